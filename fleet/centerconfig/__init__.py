"""A center's windows and staff roster, edited in the fleet, and its configuration delivered to its edge.

models.py   the tables: windows, roster, every version made, what the edge reported
service.py  the rules as plain functions: edit, check against the boards' font, make versions, publish, record
            the edge's report, roll back
glyphs.py   what the boards' font can show
routes.py   the API and the page /centers/<code>/staffing
"""
