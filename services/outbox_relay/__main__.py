from services.outbox_relay.bootstrap import main
from services.runtime import run

run(main)
