"""`python -m services.payments` runs the payments service (orders.v1 -> payment intents, the
sweeper of late refunds and of closed orders' intents); `python -m services.payments
reconcile` checks the money (exit 1 on any mismatch); `python -m services.payments demo-pay
USER_ID ORDER_ID [--edge URL]` pays an order on the local stack (docs/payments.md)."""

import asyncio
import sys

from services.payments.bootstrap import demo_pay_main, main, reconcile_main
from services.runtime import run

if len(sys.argv) > 1 and sys.argv[1] == "reconcile":
    sys.exit(asyncio.run(reconcile_main()))
if len(sys.argv) > 1 and sys.argv[1] == "demo-pay":
    sys.exit(asyncio.run(demo_pay_main(sys.argv[2:])))
run(main)
