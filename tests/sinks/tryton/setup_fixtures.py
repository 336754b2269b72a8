"""Run by .venv-tryton's python (not the hub's venv): a company, a chart of accounts, a fiscal year, a product
category with accounts, a payment term and a country in a freshly initialised Tryton DB (specs airflow-and-tryton
§5.2). Writes the ids the sink needs to the JSON file named by argv[2].

Usage: python setup_fixtures.py <trytond.conf> <out.json>   (TRYTON_DB names the database)
"""

import json
import os
import sys

from proteus import Model
from proteus import config as pconfig
from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
from trytond.modules.account_invoice.tests.tools import create_payment_term, set_fiscalyear_invoice_sequences
from trytond.modules.company.tests.tools import create_company, get_company

conf, out = sys.argv[1], sys.argv[2]
pconfig.set_trytond(database=os.environ.get("TRYTON_DB", "orderhub"), config_file=conf)
create_company()  # its default currency (USD): the amounts are what is checked, not the FX
company = get_company()
create_chart(company)
fy = set_fiscalyear_invoice_sequences(create_fiscalyear(company))
fy.click("create_period")
accounts = get_accounts(company)
cat = Model.get("product.category")(name="Goods", accounting=True, account_revenue=accounts["revenue"],
                                     account_expense=accounts["expense"])
cat.save()
unit, = Model.get("product.uom").find([("name", "=", "Unit")])
pt = create_payment_term()
pt.save()
cn = Model.get("country.country")(name="China", code="CN")
cn.save()
wh, = Model.get("stock.location").find([("type", "=", "warehouse")])
with open(out, "w") as fh:
    json.dump({"company": company.id, "category": cat.id, "unit": unit.id, "payment_term": pt.id,
               "country": cn.id, "warehouse": wh.id}, fh)
