import sys

from services.accounts.admin import main

sys.exit(main())
