"""`python -m services.recommendations` runs the service (the live signals from Kafka into
Redis); `python -m services.recommendations train ...` fits, times and saves a model version;
`... evaluate ...` runs the offline evaluation on the SYNTHETIC shopper population
(docs/recommendations.md)."""

import sys

cmd = sys.argv[1] if len(sys.argv) > 1 else ""
if cmd == "evaluate":
    from services.recommendations.evaluate import main as evaluate_main

    sys.exit(evaluate_main(sys.argv[2:]))
if cmd == "train":
    from services.recommendations.train import main as train_main

    sys.exit(train_main(sys.argv[2:]))
if cmd:
    sys.stderr.write("usage: python -m services.recommendations [train|evaluate [options]]\n")
    sys.exit(2)

from services.recommendations.bootstrap import main  # noqa: E402
from services.runtime import run  # noqa: E402

run(main)
