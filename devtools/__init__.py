"""Development tooling: the local stack, the demo data and the process supervisor.

Lives outside ``py/nexuscart`` so that none of it ships in the nexuscart wheel; importable
from the repository root (scripts, tests and the load runners put the root on sys.path).
"""
