"""`python -m services.inventory` runs the hold expirer and the payments consumer;
`python -m services.inventory reconcile [--redis-only]` checks conservation."""

import asyncio
import sys

from services.inventory.bootstrap import main, reconcile_main
from services.runtime import run

if len(sys.argv) > 1 and sys.argv[1] == "reconcile":
    sys.exit(asyncio.run(reconcile_main(with_pg="--redis-only" not in sys.argv)))
run(main)
