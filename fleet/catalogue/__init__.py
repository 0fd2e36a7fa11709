"""The county's catalogue of service items (事项清单) with their guides (办事指南), versioned, and which towns
and centers handle which item under which queue prefix. `center_items(session, code)` is the `items` section of
a center's configuration."""

from fleet.catalogue.service import center_items

__all__ = ["center_items"]
