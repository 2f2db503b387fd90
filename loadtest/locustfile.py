"""A realistic shopper mix against the edge: browse the catalog and the sale >> buy >> check
orders. Catalog pages are drawn from products 1..PRODUCTS (env; 0: no catalog browsing, the
stack has no catalog loaded).

Each simulated shopper is one buyer (own JWT). Run with scripts/bench locust, which starts
the stack, the edge and the services, creates the sale (env SALE_ID) and bounds the run.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid

from locust import FastHttpUser, between, task

from nexuscart import auth, config

SECRET = config.dev_defaults()["JWT_SECRET"]
SALE_ID = os.environ.get("SALE_ID", "1")
PRODUCTS = int(os.environ.get("PRODUCTS", "0"))
# distinct shoppers across the processes of a distributed run (master + workers)
_ids = itertools.count(50_000_000 + (os.getpid() % 1000) * 100_000)


class Shopper(FastHttpUser):
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.user_id = next(_ids)
        self.auth = {"authorization": f"Bearer {auth.issue(SECRET, self.user_id)}"}

    @task(20)
    def browse(self) -> None:
        if PRODUCTS:
            self.client.get("/products?limit=20", name="/products")
            pid = random.randint(1, PRODUCTS)
            # drafts answer 404 to shoppers: a correct answer for a link a shopper kept
            with self.client.get(
                f"/products/{pid}", name="/products/{id}", catch_response=True
            ) as r:
                if r.status_code == 404:
                    r.success()

    @task(20)
    def view_sale(self) -> None:
        self.client.get(f"/flash-sales/{SALE_ID}", name="/flash-sales/{id}")

    @task(3)
    def buy(self) -> None:
        key = uuid.uuid4().hex
        with self.client.post(
            f"/flash-sales/{SALE_ID}/purchase",
            json={"quantity": 1},
            headers={**self.auth, "idempotency-key": key},
            name="/flash-sales/{id}/purchase",
            catch_response=True,
        ) as r:
            # business refusals are correct answers, not errors
            if r.status_code in (202, 409, 429):
                r.success()

    @task(1)
    def my_orders(self) -> None:
        self.client.get("/users/me/orders?limit=10", headers=self.auth, name="/users/me/orders")
