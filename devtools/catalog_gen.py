"""A deterministic, realistic catalog: a category tree (departments > categories > leaves,
>= 1,000 by default), products with plausible titles, brands, attributes, images and prices,
2-4 variants (SKUs) each with stock, and a Zipf popularity over the products.

Same seed, same catalog, byte for byte: the benchmarks and the search relevance set rely on
it. ``load`` writes it to PostgreSQL (COPY) and the stock to Redis; ``ZipfProducts`` draws
product ids with the popularity the generator gave them, so a benchmark's request mix has
the skew of a real store (a few products take most views).

    python -m devtools.catalog_gen --products 100000 --seed 7   # load into the configured stack
    python -m devtools.catalog_gen --products 20 --dump          # print JSON lines, no I/O
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

DEFAULT_PRODUCTS: Final = 100_000
DEMO_PRODUCTS: Final = 2_000  # scripts/server's default: loads in a second or two
DEFAULT_SEED: Final = 7
ZIPF_S: Final = 1.0  # the exponent of the popularity law (1.0: the classic web-shop skew)
# Generated products belong to these sellers (ids far from the accounts' sequence, which
# starts at 1,000,000; demo sellers can be given these ids in tests).
SELLER_IDS: Final = tuple(range(900_001, 900_051))
CURRENCY: Final = "USD"

# department -> (brands, [(category, [product nouns], base price in dollars)], attributes)
# attributes: name -> values; "colour" and "size"/"storage" become variant attributes.
_DEPARTMENTS: Final[
    dict[str, tuple[list[str], list[tuple[str, list[str], float]], dict[str, list[str]]]]
] = {
    "Electronics": (
        [
            "Apple",
            "Samsung",
            "Sony",
            "LG",
            "Bose",
            "JBL",
            "Anker",
            "Philips",
            "Panasonic",
            "Xiaomi",
        ],
        [
            ("Smartphones", ["Smartphone", "Phone"], 699),
            ("Headphones", ["Wireless Headphones", "Earbuds", "Over-Ear Headphones"], 149),
            ("Televisions", ["4K Smart TV", "OLED TV", "QLED TV"], 899),
            ("Speakers", ["Bluetooth Speaker", "Soundbar", "Smart Speaker"], 129),
            ("Cameras", ["Mirrorless Camera", "Action Camera", "Instant Camera"], 549),
            ("Chargers & Cables", ["USB-C Charger", "Power Bank", "Charging Cable"], 29),
            ("Wearables", ["Smartwatch", "Fitness Tracker"], 249),
            ("Tablets", ["Tablet", "E-Reader"], 399),
        ],
        {
            "colour": ["Black", "White", "Silver", "Blue", "Graphite"],
            "storage": ["64GB", "128GB", "256GB", "512GB"],
        },
    ),
    "Computers": (
        [
            "Dell",
            "Lenovo",
            "HP",
            "Asus",
            "Acer",
            "Apple",
            "Logitech",
            "Razer",
            "Corsair",
            "Microsoft",
        ],
        [
            ("Laptops", ["Laptop", "Ultrabook", "Gaming Laptop"], 1099),
            ("Monitors", ["Monitor", "Curved Monitor", "Gaming Monitor"], 299),
            ("Keyboards", ["Mechanical Keyboard", "Wireless Keyboard"], 89),
            ("Mice", ["Wireless Mouse", "Gaming Mouse", "Ergonomic Mouse"], 49),
            ("Storage", ["External SSD", "Portable Hard Drive", "USB Flash Drive"], 99),
            ("Networking", ["Wi-Fi Router", "Mesh Wi-Fi System", "Network Switch"], 129),
            ("Printers", ["Laser Printer", "Inkjet Printer"], 199),
            ("Desktops", ["Desktop PC", "Mini PC", "All-in-One PC"], 899),
        ],
        {
            "colour": ["Black", "Silver", "White", "Space Grey"],
            "storage": ["256GB", "512GB", "1TB", "2TB"],
        },
    ),
    "Home & Kitchen": (
        [
            "KitchenAid",
            "Ninja",
            "Instant Pot",
            "Cuisinart",
            "Breville",
            "OXO",
            "Tefal",
            "Le Creuset",
            "Dyson",
            "Smeg",
        ],
        [
            ("Coffee Makers", ["Espresso Machine", "Drip Coffee Maker", "French Press"], 149),
            ("Cookware", ["Frying Pan", "Dutch Oven", "Saucepan Set"], 79),
            ("Small Appliances", ["Air Fryer", "Blender", "Stand Mixer", "Toaster"], 119),
            ("Vacuum Cleaners", ["Cordless Vacuum", "Robot Vacuum", "Upright Vacuum"], 299),
            ("Bedding", ["Duvet Cover Set", "Pillow", "Fitted Sheet"], 59),
            ("Storage & Organisation", ["Storage Box", "Shelf Organiser", "Laundry Basket"], 25),
            ("Lighting", ["Desk Lamp", "Floor Lamp", "LED Bulb Pack"], 45),
            ("Knives", ["Chef's Knife", "Knife Block Set", "Paring Knife"], 69),
        ],
        {
            "colour": ["Black", "Red", "Cream", "Stainless Steel", "Sage Green"],
            "material": ["Steel", "Cast Iron", "Aluminium", "Ceramic"],
        },
    ),
    "Fashion": (
        [
            "Levi's",
            "Zara",
            "H&M",
            "Uniqlo",
            "Ralph Lauren",
            "Tommy Hilfiger",
            "Calvin Klein",
            "Gap",
            "Mango",
            "Lacoste",
        ],
        [
            ("T-Shirts", ["Crew Neck T-Shirt", "V-Neck T-Shirt", "Graphic Tee"], 25),
            ("Jeans", ["Slim Fit Jeans", "Straight Jeans", "Skinny Jeans"], 69),
            ("Jackets", ["Denim Jacket", "Puffer Jacket", "Rain Jacket"], 119),
            ("Dresses", ["Midi Dress", "Wrap Dress", "Shirt Dress"], 79),
            ("Sweaters", ["Wool Sweater", "Cardigan", "Hoodie"], 59),
            ("Shirts", ["Oxford Shirt", "Linen Shirt", "Flannel Shirt"], 49),
            ("Accessories", ["Leather Belt", "Scarf", "Beanie"], 29),
            ("Underwear", ["Boxer Briefs 3-Pack", "Socks 5-Pack"], 19),
        ],
        {
            "colour": ["Black", "Navy", "White", "Grey", "Olive", "Burgundy"],
            "size": ["XS", "S", "M", "L", "XL"],
        },
    ),
    "Shoes": (
        [
            "Nike",
            "Adidas",
            "New Balance",
            "Puma",
            "Asics",
            "Converse",
            "Vans",
            "Dr. Martens",
            "Birkenstock",
            "Salomon",
        ],
        [
            ("Running Shoes", ["Running Shoe", "Trail Running Shoe"], 129),
            ("Sneakers", ["Sneaker", "High-Top Sneaker", "Low-Top Sneaker"], 89),
            ("Boots", ["Chelsea Boot", "Hiking Boot", "Leather Boot"], 149),
            ("Sandals", ["Sandal", "Slide", "Flip-Flop"], 45),
            ("Formal Shoes", ["Oxford Shoe", "Loafer", "Derby Shoe"], 119),
            ("Kids' Shoes", ["Kids' Sneaker", "Kids' Sandal"], 49),
            ("Slippers", ["Slipper", "Moccasin"], 35),
        ],
        {
            "colour": ["Black", "White", "Grey", "Navy", "Red"],
            "size": ["38", "39", "40", "41", "42", "43", "44", "45"],
        },
    ),
    "Sports & Outdoors": (
        [
            "The North Face",
            "Patagonia",
            "Columbia",
            "Coleman",
            "Yeti",
            "Garmin",
            "Wilson",
            "Decathlon",
            "Osprey",
            "Black Diamond",
        ],
        [
            ("Camping", ["Tent", "Sleeping Bag", "Camping Stove"], 149),
            ("Fitness", ["Yoga Mat", "Adjustable Dumbbells", "Resistance Bands"], 59),
            ("Cycling", ["Bike Helmet", "Bike Light Set", "Cycling Gloves"], 49),
            ("Hiking", ["Hiking Backpack", "Trekking Poles", "Water Bottle"], 79),
            ("Team Sports", ["Football", "Basketball", "Tennis Racket"], 39),
            ("Water Sports", ["Swim Goggles", "Wetsuit", "Paddle Board"], 89),
            ("Climbing", ["Climbing Harness", "Chalk Bag", "Climbing Rope"], 69),
        ],
        {"colour": ["Black", "Blue", "Orange", "Green", "Red"], "size": ["S", "M", "L", "XL"]},
    ),
    "Beauty": (
        [
            "L'Oreal",
            "Nivea",
            "Maybelline",
            "The Ordinary",
            "CeraVe",
            "Clinique",
            "Estee Lauder",
            "Dove",
            "Olaplex",
            "La Roche-Posay",
        ],
        [
            ("Skincare", ["Moisturiser", "Serum", "Face Cleanser", "Sunscreen SPF 50"], 25),
            ("Makeup", ["Mascara", "Foundation", "Lipstick", "Eyeshadow Palette"], 19),
            ("Hair Care", ["Shampoo", "Conditioner", "Hair Oil"], 15),
            ("Fragrance", ["Eau de Parfum", "Eau de Toilette"], 79),
            ("Bath & Body", ["Body Lotion", "Shower Gel", "Hand Cream"], 12),
            ("Men's Grooming", ["Beard Oil", "Electric Shaver", "Aftershave Balm"], 39),
        ],
        {
            "size": ["30ml", "50ml", "100ml", "200ml"],
            "skin_type": ["All", "Dry", "Oily", "Sensitive"],
        },
    ),
    "Toys & Games": (
        [
            "LEGO",
            "Hasbro",
            "Mattel",
            "Playmobil",
            "Ravensburger",
            "Nerf",
            "Hot Wheels",
            "Fisher-Price",
            "Melissa & Doug",
            "Barbie",
        ],
        [
            ("Building Sets", ["Building Set", "Construction Kit"], 59),
            ("Board Games", ["Board Game", "Card Game", "Strategy Game"], 34),
            ("Puzzles", ["1000-Piece Puzzle", "3D Puzzle", "Kids' Puzzle"], 19),
            ("Dolls", ["Doll", "Dollhouse", "Doll Accessories Set"], 39),
            ("Outdoor Play", ["Water Blaster", "Scooter", "Trampoline"], 79),
            ("Vehicles", ["Remote Control Car", "Die-Cast Car Set", "Train Set"], 45),
            ("Educational", ["STEM Kit", "Science Kit", "Coding Robot"], 49),
        ],
        {"age": ["3+", "6+", "8+", "12+"], "colour": ["Multicolour", "Red", "Blue", "Pink"]},
    ),
    "Books": (
        [
            "Penguin",
            "HarperCollins",
            "Vintage",
            "Bloomsbury",
            "O'Reilly",
            "Macmillan",
            "Scholastic",
            "Random House",
        ],
        [
            ("Fiction", ["Novel", "Short Story Collection", "Thriller"], 14),
            ("Non-Fiction", ["Biography", "History Book", "Memoir"], 18),
            ("Children's Books", ["Picture Book", "Bedtime Stories", "Activity Book"], 9),
            ("Cookbooks", ["Cookbook", "Baking Book"], 24),
            ("Technology", ["Programming Guide", "Data Science Handbook"], 44),
            ("Comics", ["Graphic Novel", "Manga Volume"], 12),
        ],
        {
            "format": ["Paperback", "Hardcover", "Audiobook"],
            "language": ["English", "Spanish", "French", "German"],
        },
    ),
    "Garden": (
        ["Bosch", "Gardena", "Fiskars", "Weber", "Husqvarna", "Black+Decker", "Makita", "Ryobi"],
        [
            ("Lawn Mowers", ["Cordless Lawn Mower", "Robot Lawn Mower", "Petrol Lawn Mower"], 349),
            ("Garden Tools", ["Pruning Shears", "Garden Spade", "Rake"], 29),
            ("Barbecues", ["Gas Barbecue", "Charcoal Grill", "Pellet Grill"], 399),
            ("Watering", ["Garden Hose", "Sprinkler", "Watering Can"], 35),
            ("Outdoor Furniture", ["Garden Chair", "Patio Table", "Sun Lounger"], 149),
            ("Plants & Seeds", ["Seed Kit", "Planter", "Compost Bin"], 19),
        ],
        {
            "colour": ["Green", "Black", "Grey", "Terracotta"],
            "power": ["Manual", "Electric", "18V Battery", "Petrol"],
        },
    ),
    "Tools & DIY": (
        ["Bosch", "DeWalt", "Makita", "Milwaukee", "Stanley", "Black+Decker", "Ryobi", "Festool"],
        [
            (
                "Power Tools",
                ["Cordless Drill", "Impact Driver", "Circular Saw", "Angle Grinder"],
                149,
            ),
            ("Hand Tools", ["Screwdriver Set", "Hammer", "Socket Set", "Spirit Level"], 29),
            ("Measuring", ["Laser Measure", "Tape Measure", "Stud Finder"], 39),
            ("Workwear", ["Work Gloves", "Safety Glasses", "Tool Belt"], 24),
            ("Fasteners", ["Screw Assortment", "Wall Plug Set", "Nail Kit"], 14),
        ],
        {"power": ["18V", "12V", "Corded", "Manual"], "colour": ["Yellow", "Blue", "Green", "Red"]},
    ),
    "Health": (
        [
            "Omron",
            "Braun",
            "Philips",
            "Optimum Nutrition",
            "Centrum",
            "Withings",
            "Oral-B",
            "Fitbit",
        ],
        [
            ("Vitamins", ["Multivitamin", "Vitamin D3", "Omega-3 Capsules"], 19),
            ("Monitors & Tests", ["Blood Pressure Monitor", "Thermometer", "Smart Scale"], 49),
            ("Oral Care", ["Electric Toothbrush", "Water Flosser", "Toothbrush Heads"], 59),
            ("Sports Nutrition", ["Whey Protein", "Protein Bar Box", "Creatine"], 34),
            ("First Aid", ["First Aid Kit", "Bandage Set"], 15),
        ],
        {
            "size": ["30 servings", "60 servings", "90 servings"],
            "flavour": ["Unflavoured", "Chocolate", "Vanilla", "Strawberry"],
        },
    ),
    "Pet Supplies": (
        ["Purina", "Royal Canin", "Kong", "Pedigree", "Whiskas", "Hill's", "Trixie", "Ferplast"],
        [
            ("Dog Food", ["Dry Dog Food", "Wet Dog Food", "Dog Treats"], 39),
            ("Cat Food", ["Dry Cat Food", "Wet Cat Food", "Cat Treats"], 29),
            ("Pet Toys", ["Chew Toy", "Cat Scratcher", "Rope Toy"], 12),
            ("Beds & Carriers", ["Pet Bed", "Pet Carrier", "Dog Crate"], 59),
            ("Aquarium", ["Aquarium Kit", "Aquarium Filter", "Fish Food"], 49),
        ],
        {"size": ["S", "M", "L", "XL"], "pet": ["Dog", "Cat", "Puppy", "Kitten"]},
    ),
    "Baby": (
        [
            "Pampers",
            "Huggies",
            "Chicco",
            "Graco",
            "Philips Avent",
            "Tommee Tippee",
            "Joie",
            "Cybex",
        ],
        [
            ("Nappies", ["Nappies", "Baby Wipes", "Nappy Bag"], 29),
            ("Feeding", ["Baby Bottle Set", "High Chair", "Bottle Steriliser"], 49),
            ("Strollers", ["Stroller", "Travel System", "Buggy"], 299),
            ("Car Seats", ["Infant Car Seat", "Booster Seat", "Convertible Car Seat"], 199),
            ("Nursery", ["Baby Monitor", "Cot", "Changing Table"], 149),
        ],
        {
            "size": ["Newborn", "Size 1", "Size 2", "Size 3", "Size 4"],
            "colour": ["Grey", "Black", "Beige", "Blue"],
        },
    ),
    "Automotive": (
        ["Bosch", "Michelin", "Castrol", "Thule", "Garmin", "Philips", "3M", "Armor All"],
        [
            ("Car Electronics", ["Dash Cam", "Car Phone Holder", "Car Charger"], 59),
            ("Car Care", ["Car Wax", "Microfibre Cloth Pack", "Pressure Washer"], 24),
            ("Tyres & Wheels", ["Tyre Inflator", "Wheel Lock Set", "Snow Chains"], 69),
            ("Roof Racks", ["Roof Box", "Bike Carrier", "Roof Bars"], 249),
            ("Oils & Fluids", ["Engine Oil 5W-30", "Screen Wash", "Coolant"], 35),
        ],
        {"colour": ["Black", "Silver", "Grey"], "size": ["1L", "4L", "5L", "Universal"]},
    ),
    "Office": (
        [
            "Moleskine",
            "Leitz",
            "Fellowes",
            "Pilot",
            "Staedtler",
            "Herman Miller",
            "IKEA",
            "Post-it",
        ],
        [
            ("Office Chairs", ["Office Chair", "Ergonomic Chair", "Gaming Chair"], 249),
            ("Desks", ["Standing Desk", "Writing Desk", "Corner Desk"], 299),
            ("Stationery", ["Notebook", "Gel Pen Set", "Sticky Notes"], 12),
            ("Filing", ["Lever Arch File", "Desk Organiser", "Shredder"], 29),
            ("Presentation", ["Whiteboard", "Projector Screen", "Laser Pointer"], 59),
        ],
        {
            "colour": ["Black", "White", "Oak", "Grey", "Blue"],
            "size": ["A5", "A4", "A3", "Standard"],
        },
    ),
    "Grocery": (
        [
            "Lavazza",
            "Illy",
            "Twinings",
            "Lindt",
            "Barilla",
            "Heinz",
            "Kellogg's",
            "Nestle",
            "Tate & Lyle",
            "Kikkoman",
        ],
        [
            ("Coffee", ["Coffee Beans", "Ground Coffee", "Coffee Capsules"], 12),
            ("Tea", ["Green Tea", "Earl Grey", "Herbal Tea"], 6),
            ("Chocolate", ["Dark Chocolate", "Milk Chocolate Bar", "Truffles Box"], 8),
            ("Pasta & Rice", ["Spaghetti", "Penne", "Basmati Rice"], 4),
            ("Breakfast", ["Granola", "Cornflakes", "Porridge Oats"], 5),
            ("Sauces", ["Tomato Ketchup", "Soy Sauce", "Pesto"], 4),
        ],
        {
            "size": ["250g", "500g", "1kg", "12-pack"],
            "diet": ["Regular", "Organic", "Vegan", "Gluten-Free"],
        },
    ),
    "Music": (
        ["Yamaha", "Fender", "Gibson", "Roland", "Casio", "Korg", "Marshall", "Shure", "Ibanez"],
        [
            ("Guitars", ["Electric Guitar", "Acoustic Guitar", "Bass Guitar"], 499),
            ("Keyboards & Pianos", ["Digital Piano", "Keyboard", "MIDI Controller"], 349),
            ("Audio Equipment", ["Studio Microphone", "Audio Interface", "Studio Monitors"], 199),
            ("Amplifiers", ["Guitar Amp", "Bass Amp", "Headphone Amp"], 249),
            ("Drums", ["Electronic Drum Kit", "Snare Drum", "Cymbal Pack"], 399),
        ],
        {
            "colour": ["Sunburst", "Black", "Natural", "Red", "White"],
            "finish": ["Gloss", "Satin", "Matte"],
        },
    ),
    "Video Games": (
        [
            "Sony",
            "Nintendo",
            "Microsoft",
            "Logitech",
            "Razer",
            "SteelSeries",
            "Turtle Beach",
            "8BitDo",
        ],
        [
            ("Consoles", ["Game Console", "Handheld Console"], 449),
            ("Controllers", ["Wireless Controller", "Arcade Stick", "Racing Wheel"], 69),
            ("Gaming Headsets", ["Gaming Headset", "Wireless Gaming Headset"], 99),
            ("Games", ["Adventure Game", "Racing Game", "Sports Game", "RPG"], 59),
            ("Accessories", ["Charging Dock", "Carrying Case", "Memory Card"], 29),
        ],
        {
            "platform": ["PlayStation 5", "Xbox Series X", "Nintendo Switch", "PC"],
            "colour": ["Black", "White", "Red"],
        },
    ),
    "Jewellery & Watches": (
        [
            "Pandora",
            "Swarovski",
            "Casio",
            "Seiko",
            "Fossil",
            "Citizen",
            "Tissot",
            "Daniel Wellington",
        ],
        [
            ("Watches", ["Analogue Watch", "Chronograph Watch", "Digital Watch"], 199),
            ("Necklaces", ["Pendant Necklace", "Chain Necklace"], 89),
            ("Rings", ["Silver Ring", "Gold Ring", "Stacking Rings"], 79),
            ("Earrings", ["Stud Earrings", "Hoop Earrings"], 49),
            ("Bracelets", ["Charm Bracelet", "Bangle", "Leather Bracelet"], 59),
        ],
        {
            "colour": ["Silver", "Gold", "Rose Gold", "Black"],
            "material": ["Stainless Steel", "Sterling Silver", "Leather", "Titanium"],
        },
    ),
}

# brand-specific product lines make famous models findable ("iPhone", "Galaxy", "PlayStation")
_LINES: Final[dict[tuple[str, str], list[str]]] = {
    ("Apple", "Smartphones"): ["iPhone 15", "iPhone 15 Pro", "iPhone 14", "iPhone SE"],
    ("Samsung", "Smartphones"): ["Galaxy S24", "Galaxy A55", "Galaxy Z Flip"],
    ("Xiaomi", "Smartphones"): ["Redmi Note 13", "Xiaomi 14"],
    ("Sony", "Smartphones"): ["Xperia 1", "Xperia 10"],
    ("Apple", "Headphones"): ["AirPods Pro", "AirPods Max", "AirPods"],
    ("Sony", "Headphones"): ["WH-1000XM5", "WF-1000XM5"],
    ("Bose", "Headphones"): ["QuietComfort Ultra", "QuietComfort 45"],
    ("Apple", "Tablets"): ["iPad Air", "iPad Pro", "iPad mini"],
    ("Apple", "Wearables"): ["Apple Watch Series 9", "Apple Watch SE"],
    ("Apple", "Laptops"): ["MacBook Air", "MacBook Pro"],
    ("Dell", "Laptops"): ["XPS 13", "Inspiron 15", "Latitude 7440"],
    ("Lenovo", "Laptops"): ["ThinkPad X1 Carbon", "IdeaPad 5", "Legion 5"],
    ("Sony", "Consoles"): ["PlayStation 5", "PlayStation 5 Slim"],
    ("Nintendo", "Consoles"): ["Switch OLED", "Switch Lite"],
    ("Microsoft", "Consoles"): ["Xbox Series X", "Xbox Series S"],
    ("Dyson", "Vacuum Cleaners"): ["V15 Detect", "V12 Slim", "Gen5"],
    ("Nike", "Running Shoes"): ["Pegasus 41", "Vomero 17", "Invincible 3"],
    ("Adidas", "Sneakers"): ["Samba OG", "Gazelle", "Stan Smith"],
    ("LEGO", "Building Sets"): ["Technic", "Star Wars", "City", "Creator 3-in-1"],
}
_MODELS: Final = [
    "Pro",
    "Max",
    "Ultra",
    "Lite",
    "Air",
    "Classic",
    "Sport",
    "Plus",
    "Prime",
    "Core",
    "Flex",
    "Edge",
    "Nova",
    "Essential",
    "Signature",
    "Active",
    "Studio",
    "Go",
]
_AUDIENCES: Final = ["Men's", "Women's", "Kids'"]
_SEGMENTS: Final = [
    "Premium",
    "Budget",
    "Eco-Friendly",
    "Professional",
    "Compact",
    "Travel",
    "Bestselling",
    "Smart",
    "Refurbished",
    "Gift Ideas",
]
# departments whose leaves are split by audience (the others by segment only)
_AUDIENCE_DEPARTMENTS: Final = frozenset(
    {"Fashion", "Shoes", "Sports & Outdoors", "Beauty", "Jewellery & Watches", "Toys & Games"}
)
_ADJECTIVES: Final = [
    "durable",
    "lightweight",
    "award-winning",
    "versatile",
    "everyday",
    "premium",
    "compact",
    "comfortable",
    "reliable",
    "easy-to-use",
    "high-performance",
]


@dataclass(frozen=True)
class Category:
    category_id: int
    parent_id: int | None
    name: str
    slug: str
    position: int


@dataclass(frozen=True)
class Variant:
    sku: str
    price_minor: int
    currency: str
    attributes: dict[str, str]
    low_stock_threshold: int
    stock: int
    position: int


@dataclass(frozen=True)
class Product:
    product_id: int
    seller_id: int
    category_id: int
    title: str
    description: str
    brand: str
    attributes: dict[str, str]
    images: list[str]
    status: str
    popularity: float
    variants: list[Variant] = field(default_factory=list)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class _Leaf:
    category_id: int
    department: str
    category: str
    segment: str


def categories(seed: int = DEFAULT_SEED, leaves_per_category: int = 8) -> list[Category]:
    """The tree: 20 departments > their categories > leaves (segments such as "Men's"),
    over 1,000 nodes with the default ``leaves_per_category``. Ids are 1.. in tree order."""
    return [c for c, _ in _tree(seed, leaves_per_category)]


def _tree(seed: int, leaves_per_category: int) -> list[tuple[Category, _Leaf | None]]:
    rng = random.Random(f"categories:{seed}")
    out: list[tuple[Category, _Leaf | None]] = []
    ids = itertools.count(1)
    for d_pos, (dept, (_, cats, _)) in enumerate(_DEPARTMENTS.items()):
        d_id = next(ids)
        out.append((Category(d_id, None, dept, slugify(dept), d_pos), None))
        for c_pos, (cat, _, _) in enumerate(cats):
            c_id = next(ids)
            c_slug = f"{slugify(dept)}-{slugify(cat)}"
            out.append((Category(c_id, d_id, cat, c_slug, c_pos), None))
            for l_pos, seg in enumerate(
                rng.sample(_SEGMENTS, min(leaves_per_category, len(_SEGMENTS)))
            ):
                l_id = next(ids)
                name = f"{seg} {cat}"
                out.append(
                    (
                        Category(l_id, c_id, name, f"{c_slug}-{slugify(seg)}", l_pos),
                        _Leaf(l_id, dept, cat, seg),
                    )
                )
    return out


def zipf_weights(n: int, s: float = ZIPF_S) -> list[float]:
    """Weight of popularity rank r (1-based) is 1 / r^s."""
    return [1.0 / (r**s) for r in range(1, n + 1)]


def popularity_order(n: int, seed: int = DEFAULT_SEED) -> list[int]:
    """Product ids 1..n from the most to the least popular (a seeded permutation: popularity
    does not follow the id)."""
    ids = list(range(1, n + 1))
    random.Random(f"popularity:{seed}").shuffle(ids)
    return ids


class ZipfProducts:
    """Draws product ids with the generator's popularity (Zipf over a seeded ranking), for
    benchmarks: ``ZipfProducts(100_000).sample(50_000)``."""

    def __init__(self, n: int, seed: int = DEFAULT_SEED, s: float = ZIPF_S):
        self.order = popularity_order(n, seed)
        self.cumulative = list(itertools.accumulate(zipf_weights(n, s)))

    def draw(self, rng: random.Random) -> int:
        x = rng.random() * self.cumulative[-1]
        return self.order[bisect.bisect_left(self.cumulative, x)]

    def sample(self, k: int, seed: int = 0) -> list[int]:
        rng = random.Random(f"draw:{seed}")
        return [self.draw(rng) for _ in range(k)]


def sku_of(product_id: int, i: int) -> str:
    return f"SKU-{product_id:07d}-{i + 1}"


def products(n: int = DEFAULT_PRODUCTS, seed: int = DEFAULT_SEED) -> Iterator[Product]:
    """Products 1..n, deterministic per (seed, product id): each is generated from its own
    RNG, so product 17 is the same whatever n is."""
    leaves = [leaf for _, leaf in _tree(seed, 8) if leaf is not None]
    order = popularity_order(n, seed)
    rank = {pid: r for r, pid in enumerate(order, 1)}
    for pid in range(1, n + 1):
        yield _product(pid, seed, leaves, 1.0 / rank[pid] ** ZIPF_S)


def _product(pid: int, seed: int, leaves: Sequence[_Leaf], popularity: float) -> Product:
    rng = random.Random(f"product:{seed}:{pid}")
    leaf = rng.choice(leaves)
    brands, cats, attr_space = _DEPARTMENTS[leaf.department]
    _, nouns, base_price = next(c for c in cats if c[0] == leaf.category)
    brand = rng.choice(brands)
    noun = rng.choice(nouns)
    lines = _LINES.get((brand, leaf.category))
    if lines and rng.random() < 0.8:
        line = rng.choice(lines)
        title = f"{brand} {line}"
        if rng.random() < 0.5:
            title += f" {noun}"
    else:
        title = (
            f"{brand} {rng.choice(_MODELS)} {rng.randint(1, 9) * 100 // rng.choice((1, 10))} {noun}"
        )
    audience = {"Men's": "Men", "Women's": "Women", "Kids'": "Kids"}.get(leaf.segment)
    if audience:
        title = f"{title} for {audience}"
    names = list(attr_space)
    variant_attr = names[0]
    fixed_attrs = {k: rng.choice(v) for k, v in attr_space.items() if k != variant_attr}
    fixed_attrs["segment"] = leaf.segment
    price = max(1.0, rng.lognormvariate(0, 0.45) * base_price)
    base_minor = round(price) * 100 - 1 if price >= 5 else int(price * 100)
    n_variants = rng.choice((1, 2, 2, 3, 3, 4))
    values = rng.sample(attr_space[variant_attr], min(n_variants, len(attr_space[variant_attr])))
    variants = []
    for i, value in enumerate(values):
        uplift = 1.0 + 0.15 * i if variant_attr in ("storage", "size") else 1.0
        threshold = rng.choice((3, 5, 5, 10, 20))
        roll = rng.random()
        stock = (
            0
            if roll < 0.08
            else rng.randint(1, threshold)
            if roll < 0.2
            else rng.randint(threshold + 1, 500)
        )
        variants.append(
            Variant(
                sku=sku_of(pid, i),
                price_minor=max(0, int(base_minor * uplift)),
                currency=CURRENCY,
                attributes={variant_attr: value},
                low_stock_threshold=threshold,
                stock=stock,
                position=i,
            )
        )
    adjectives = rng.sample(_ADJECTIVES, 2)
    article = "an" if adjectives[0][0] in "aeiou" else "a"
    description = (
        f"The {title} is {article} {adjectives[0]}, {adjectives[1]} {noun.lower()} from {brand}. "
        f"Part of our {leaf.category.lower()} range in {leaf.department.lower()}; available in "
        f"{', '.join(v.attributes[variant_attr] for v in variants)}."
    )
    images = [f"https://images.nexuscart.example/p/{pid}/{k}.jpg" for k in range(rng.randint(1, 5))]
    return Product(
        product_id=pid,
        seller_id=rng.choice(SELLER_IDS),
        category_id=leaf.category_id,
        title=title,
        description=description,
        brand=brand,
        attributes=fixed_attrs,
        images=images,
        status="active" if rng.random() < 0.97 else "draft",
        popularity=popularity,
        variants=variants,
    )


async def load(
    dsn: str,
    redis_url: str,
    n: int = DEMO_PRODUCTS,
    seed: int = DEFAULT_SEED,
    batch: int = 5_000,
) -> int:
    """Write the catalog (categories, then products 1..n) to PostgreSQL by COPY, then every
    SKU's stock to Redis. Skips the products already there (a re-run, or a bigger n after a
    smaller one, adds only the missing ids); returns how many products were written."""
    import asyncpg

    from nexuscart.adapters import redis_conn
    from nexuscart.adapters.catalog_store import CatalogStore, StockLevel
    from nexuscart.config import RedisSettings

    conn = await asyncpg.connect(dsn, timeout=10)
    client = redis_conn.connect(RedisSettings(url=redis_url), timeout_s=10)
    written = 0
    try:
        have_cats = {r[0] for r in await conn.fetch("SELECT category_id FROM categories")}
        new_cats = [
            (c.category_id, c.parent_id, c.name, c.slug, c.position)
            for c in categories(seed)
            if c.category_id not in have_cats
        ]
        if new_cats:
            await conn.copy_records_to_table(
                "categories",
                records=new_cats,
                columns=["category_id", "parent_id", "name", "slug", "position"],
            )
        have = {
            r[0]
            for r in await conn.fetch("SELECT product_id FROM products WHERE product_id <= $1", n)
        }
        store = CatalogStore(client)
        gen = (p for p in products(n, seed) if p.product_id not in have)
        while chunk := list(itertools.islice(gen, batch)):
            async with conn.transaction():
                await _copy_chunk(conn, chunk)
            await store.set_levels(
                (v.sku, StockLevel(0, v.stock, v.low_stock_threshold))
                for p in chunk
                for v in p.variants
            )
            written += len(chunk)
    finally:
        await conn.close()
        await client.aclose()
    return written


async def _copy_chunk(conn: object, chunk: Sequence[Product]) -> None:
    import asyncpg

    assert isinstance(conn, asyncpg.Connection)
    await conn.copy_records_to_table(
        "products",
        records=[
            (
                p.product_id,
                p.seller_id,
                p.category_id,
                p.title,
                p.description,
                p.brand,
                json.dumps(p.attributes),
                p.images,
                p.status,
                p.popularity,
            )
            for p in chunk
        ],
        columns=[
            "product_id",
            "seller_id",
            "category_id",
            "title",
            "description",
            "brand",
            "attributes",
            "images",
            "status",
            "popularity",
        ],
    )
    variants = [(p.product_id, v) for p in chunk for v in p.variants]
    await conn.copy_records_to_table(
        "variants",
        records=[
            (
                pid,
                v.sku,
                v.price_minor,
                v.currency,
                json.dumps(v.attributes),
                v.low_stock_threshold,
                v.stock,
                v.position,
            )
            for pid, v in variants
        ],
        columns=[
            "product_id",
            "sku",
            "price_minor",
            "currency",
            "attributes",
            "low_stock_threshold",
            "stock",
            "position",
        ],
    )
    await conn.copy_records_to_table(
        "skus", records=[(v.sku, pid) for pid, v in variants], columns=["sku", "product_id"]
    )


def _dump(n: int, seed: int) -> None:
    for c in categories(seed):
        print(json.dumps({"category": c.__dict__}))
    for p in products(n, seed):
        d = dict(p.__dict__)
        d["variants"] = [v.__dict__ for v in p.variants]
        print(json.dumps({"product": d}))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--products", type=int, default=DEFAULT_PRODUCTS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--dump", action="store_true", help="print JSON lines instead of loading")
    args = ap.parse_args(argv)
    if args.dump:
        _dump(args.products, args.seed)
        return 0
    from nexuscart import config

    settings = config.load()
    n = asyncio.run(load(settings.postgres.dsn, settings.redis.url, args.products, args.seed))
    print(f"loaded {n} products", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
