"""Fleet users, roles, sessions and API tokens.

Roles (see `roles.py`): a county administrator, a town operator limited to the
centers whose division code starts with their 9-digit town prefix, and a
read-only user who sees their scope and changes nothing. Browser users log in
with a password (argon2) and get a signed session cookie plus a per-session CSRF
token; automation uses API tokens (`Authorization: Bearer ...`), hashed at rest,
with the same role and scope as the user they belong to.
"""
