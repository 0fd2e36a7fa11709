"""The county's register of its service centers and its divisions, and the rollout coverage.

- `models.py`: `CenterProfile` (name in the unified form 某某镇便民服务中心 / 某某村便民服务站, level, address,
  咨询电话 / 投诉电话, contact person), `CenterHours` (opening hours: the one source the alerts and the profile
  share), `Division` (the statistics bureau's list of divisions), `RolloutTarget`;
- `profile.py`: checking and saving a profile (plain functions; `center_profile(session, code)` for whoever
  needs a center's profile, e.g. the configuration pushed to its edge);
- `divisions.py`: reading the statistics bureau's CSV and replacing a county's divisions with it;
- `rollout.py`: which towns and villages have a center or station and which had one online today;
- `names.py`: names beside codes (`center_name(code)` in every page's template), search by name or code;
- `listing.py`: the register as a list (described centers and those only seen), for /registry and its API;
- `routes.py`: the JSON API and the pages (/registry, /registry/{code}, /registry-coverage).

The business rules are plain functions over a session; the routes only check scope, render and audit.
"""
