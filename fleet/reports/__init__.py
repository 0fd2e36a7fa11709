"""绩效报表: the county's reports (figures.py), their periods, CSV/XLSX export, the rating records of the national
好差评 fields, the monthly report to the webhooks, and the pages and API (routes.py)."""
