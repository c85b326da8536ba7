"""Regenerate the example inputs: `python examples/data/make_data.py` (deterministic).

reviews/requests.jsonl: 300 product reviews to label (gcs-job.yaml).
catalog/part-000.jsonl and part-001.jsonl: 200 product descriptions to write, all sharing one long
style guide as system instruction, which is what implicit caching rewards (resume-and-deletion.yaml).
support/tickets_requests.jsonl: 120 support tickets to triage, the rows of the BigQuery table
support.tickets_requests (bigquery-job.yaml), with its schema in tickets_requests.schema.json. Load it
into a real dataset with `bq load --source_format=NEWLINE_DELIMITED_JSON support.tickets_requests
tickets_requests.jsonl tickets_requests.schema.json`.
"""

from __future__ import annotations

import json
import pathlib
import random

HERE = pathlib.Path(__file__).parent
PRODUCTS = [
    "wireless earbuds",
    "espresso machine",
    "trail running shoes",
    "standing desk",
    "robot vacuum",
    "mechanical keyboard",
    "air fryer",
    "hiking backpack",
    "smart thermostat",
    "electric toothbrush",
    "noise-cancelling headphones",
    "cast iron skillet",
    "yoga mat",
    "e-reader",
    "camping tent",
]
PRAISE = [
    "it works exactly as described",
    "setup took five minutes",
    "the battery lasts for days",
    "it feels sturdy and well made",
    "it was worth every cent",
    "support replied within an hour",
]
COMPLAINTS = [
    "it stopped working after two weeks",
    "the app keeps disconnecting",
    "it arrived with a cracked case",
    "it is much louder than advertised",
    "the instructions were useless",
    "the refund took a month",
]
NEUTRAL = [
    "it does the job",
    "it is nothing special",
    "it is about what you would expect for the price",
    "it is fine for now",
]
INSTRUCTION = (
    "Classify the sentiment of the product review as positive, neutral or negative, and name the "
    "main reason in at most eight words. Answer as JSON with the keys sentiment and reason."
)
STYLE_GUIDE = " ".join(
    [
        "You write product descriptions for an online outdoor and home goods store.",
        "Voice: warm, concrete, never breathless; no superlatives without a fact behind them.",
        "Structure: one sentence on what it is, two on what it does better than the usual, one on who it is for.",
        "Always mention materials, weight or dimensions when given; never invent specifications.",
        "Avoid these words: revolutionary, game-changer, must-have, perfect, amazing, ultimate.",
        "Use metric units first, imperial in parentheses. Write for a reader scanning on a phone.",
    ]
    * 20
)  # about 2,700 tokens: past the 2,048-token minimum for implicit caching


def review(rng: random.Random, index: int) -> dict:
    product = rng.choice(PRODUCTS)
    mood = rng.choice(["positive", "negative", "neutral"])
    parts = {"positive": PRAISE, "negative": COMPLAINTS, "neutral": NEUTRAL}[mood]
    first, second = rng.sample(parts, 2)
    text = f"Bought the {product} last month. {first.capitalize()}, and {second}."
    return {
        "id": f"review-{index:04d}",
        "request": {
            "systemInstruction": {"parts": [{"text": INSTRUCTION}]},
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 64, "responseMimeType": "application/json"},
        },
    }


def description(rng: random.Random, index: int) -> dict:
    product = rng.choice(PRODUCTS)
    facts = f"{rng.randint(1, 40) / 10:.1f} kg, {rng.choice(['recycled aluminium', 'beech wood', 'ripstop nylon'])}"
    return {
        "id": f"sku-{index:05d}",
        "request": {
            "systemInstruction": {"parts": [{"text": STYLE_GUIDE}]},
            "contents": [{"role": "user", "parts": [{"text": f"Write the description for: {product} ({facts})."}]}],
            "generationConfig": {"temperature": 0.4, "maxOutputTokens": 256},
        },
    }


TRIAGE = (
    "Triage the support ticket: pick one category (billing, shipping, defect, account, other) and an "
    "urgency from 1 (can wait) to 3 (today). Answer as JSON with the keys category and urgency."
)
TICKETS = [
    "I was charged twice for order {n}.",
    "My {product} arrived two weeks late and the box was crushed.",
    "The {product} will not turn on any more.",
    "I cannot log in since I changed my email address.",
    "Do you ship the {product} to Norway?",
    "The {product} makes a grinding noise after ten minutes of use.",
]
TICKET_SCHEMA = [
    {"name": "ticket_id", "type": "STRING", "mode": "REQUIRED"},
    {"name": "customer_tier", "type": "STRING"},
    {"name": "opened", "type": "DATE"},
    {"name": "request", "type": "JSON", "mode": "REQUIRED"},
]


def ticket(rng: random.Random, index: int) -> dict:
    text = rng.choice(TICKETS).format(n=rng.randint(10000, 99999), product=rng.choice(PRODUCTS))
    return {
        "ticket_id": f"T-{index:04d}",
        "customer_tier": rng.choice(["free", "pro", "enterprise"]),
        "opened": f"2026-11-{rng.randint(1, 23):02d}",
        "request": {
            "systemInstruction": {"parts": [{"text": TRIAGE}]},
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"temperature": 0.0, "maxOutputTokens": 64, "responseMimeType": "application/json"},
        },
    }


def write(path: pathlib.Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))


def main() -> None:
    rng = random.Random(2026)
    write(HERE / "reviews" / "requests.jsonl", [review(rng, i) for i in range(300)])
    write(HERE / "catalog" / "part-000.jsonl", [description(rng, i) for i in range(100)])
    write(HERE / "catalog" / "part-001.jsonl", [description(rng, i) for i in range(100, 200)])
    write(HERE / "support" / "tickets_requests.jsonl", [ticket(rng, i) for i in range(120)])
    (HERE / "support" / "tickets_requests.schema.json").write_text(json.dumps(TICKET_SCHEMA, indent=2) + "\n")


if __name__ == "__main__":
    main()
