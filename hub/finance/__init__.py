"""Finance room: payment statements (Alipay, WeChat Pay, carriers' COD remittances) reconciled against hub orders
and refunds.

    settings.py    where the statements come from (pydantic; credentials as SecretRef)
    statements.py  pure parsers of the real files' layouts -> StatementLine (money in fen)
    client.py      downloads through the providers' APIs (WeChat Pay v2 downloadbill, Alipay bill download URL)
    reconcile.py   import a day, match it to orders and refunds, list mismatches by kind with totals to the fen,
                   and emit ``receipt.matched`` outbox events exactly once
"""
