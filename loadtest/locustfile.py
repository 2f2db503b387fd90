"""A realistic shopper mix against the edge: browse the catalog and the sale >> cart >>
checkout >> flash-sale purchase, and a look at one's orders. Catalog pages are drawn from
products 1..PRODUCTS (env; 0: no catalog browsing, the stack has no catalog loaded); the cart
and checkout tasks run with CART=1 and a catalog (their SKUs are the catalog's).

Each simulated shopper is one buyer (own JWT). Run with scripts/bench locust, which starts
the stack, the edge and the services, creates the sale (env SALE_ID) and bounds the run.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid

from locust import FastHttpUser, between, task

from devtools.catalog_gen import sku_of
from nexuscart import auth, config

SECRET = config.dev_defaults()["JWT_SECRET"]
SALE_ID = os.environ.get("SALE_ID", "1")
PRODUCTS = int(os.environ.get("PRODUCTS", "0"))
CART = os.environ.get("CART") == "1" and PRODUCTS > 0
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

    @task(10)
    def view_sale(self) -> None:
        self.client.get(f"/flash-sales/{SALE_ID}", name="/flash-sales/{id}")

    @task(6)
    def add_to_cart(self) -> None:
        if not CART:
            return
        pid = random.randint(1, PRODUCTS)
        with self.client.post(
            "/cart/items",
            json={"product_id": pid, "sku": sku_of(pid, 0), "quantity": 1},
            headers={**self.auth, "idempotency-key": uuid.uuid4().hex},
            name="/cart/items",
            catch_response=True,
        ) as r:
            if r.status_code in (404, 409):  # a draft product, or none left
                r.success()

    @task(2)
    def checkout(self) -> None:
        if not CART:
            return
        cart = self.client.get("/cart", headers=self.auth, name="/cart")
        if cart.status_code != 200 or not cart.json().get("lines"):
            return
        with self.client.post(
            "/checkout",
            headers={**self.auth, "idempotency-key": uuid.uuid4().hex},
            name="/checkout",
            catch_response=True,
        ) as r:
            if r.status_code in (202, 409):  # placed, or a line's stock ran short
                r.success()

    @task(1)
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
