"""Order processing, between ingest and dispatch: SKU mapping to master SKUs, bundles and gifts, exact money
allocation, rules as data (hold, delay, route, split, gift, merge), and the workbench that groups, releases and
replays what is stuck.

    skus.py        master SKU catalogue, channel SKU map, bundles (mappings/skus.yaml + imported mappings)
    allocation.py  integer-fen largest-remainder allocation (pure)
    rules.py       mappings/rules.yaml: a closed vocabulary of conditions and rule kinds, validated at load
    plan.py        canonical order + tables + rules + stock -> OrderPlan (pure)
    step.py        the outbox subscriber that plans, stores and publishes order.released events
    workbench.py   quarantine by missing key, bulk import and release, replay with diff, mapping check and test
"""
