from services.orders.bootstrap import main
from services.runtime import run

run(main)
