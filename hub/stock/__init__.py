"""The stock room: a ledger of on-hand stock per master SKU and warehouse (ledger.py), available-to-sell per
channel and shop under the policies of ``mappings/stock.yaml`` (ats.py), versioned and acknowledged pushes to the
channels (push.py), and the dry run of a policy change (preview.py)."""
