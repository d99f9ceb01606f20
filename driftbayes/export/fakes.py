"""Fake values for templated path parameters, for load generators.

:func:`fake_segment` gives a random concrete segment for a ``{name}`` parameter that
:func:`driftbayes.templates.template_path` (default redaction policy) maps back to ``{name}``:
digits for ``{id}``, a UUID for ``{uuid}``, a fake JWT for ``{jwt}``, a Luhn-valid *test* card
number for ``{card}`` and so on. None is a real secret: JWTs are unsigned mocks, cards and SSNs
come from published test / voided numbers, keys carry ``EXAMPLE`` or ``test`` markers, IBANs use
the bank code ``TEST``. Unknown names get digits (``{id}``).

The code below the ``runtime`` marker is copied verbatim into generated locustfiles
(:mod:`driftbayes.export.locust`), so it uses only the imports above the marker.
"""

import base64
import random
import uuid

# ---- runtime: copied into generated locustfiles from here on (imports: base64, random, uuid)

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_LOWER36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# published test card numbers (Luhn-valid, never issued), written with dashes: all-digit
# segments template to {id}
_TEST_CARDS = ("4111-1111-1111-1111", "4242-4242-4242-4242", "4012-8888-8888-1881",
               "5555-5555-5555-4444", "5105-1051-0510-5100", "3782-822463-10005",
               "6011-1111-1111-1117")
_VOID_SSNS = ("078-05-1120", "219-09-9999", "123-45-6789")  # voided / advertising numbers


def _pick(alphabet, n):
    return "".join(random.choice(alphabet) for _ in range(n))


def _jwt():
    def b64(data):
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    header = b64('{"alg":"HS256","typ":"JWT"}')
    payload = b64(f'{{"sub":"{random.randint(1, 1000000)}","mock":"driftbayes"}}')
    return f"{header}.{payload}.{_pick(_B62, 43)}"


def _iban():
    body = "TEST" + _pick("0123456789", 14)
    digits = "".join(str(int(c, 36)) for c in body + "GB00")
    return f"GB{98 - int(digits) % 97:02d}{body}"


def _token():
    """32 distinct base62 characters, letters alternating in case: passes the entropy rule."""
    chars = random.sample(_B62, 32)
    if not any(c.isdigit() for c in chars):
        chars[0] = random.choice("0123456789")
    out, upper = [], random.random() < 0.5
    for c in chars:
        if c.isalpha():
            c = c.upper() if upper else c.lower()
            upper = not upper
        out.append(c)
    return "".join(out)


_FAKES = {
    "id": lambda: str(random.randint(1, 1000000)),
    "uuid": lambda: str(uuid.uuid4()),
    "hash": lambda: f"{random.randrange(10)}{random.getrandbits(120):030x}"
                    f"{random.choice('abcdef')}",  # a digit and a letter: never all digits
    "date": lambda: f"2024-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}",
    "email": lambda: f"user{random.randint(1, 1000000)}@example.com",
    "jwt": _jwt,
    "aws_key": lambda: "AKIA" + _pick("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 9) + "EXAMPLE",
    "github_token": lambda: "ghp_" + _pick(_LOWER36, 36),
    "slack_token": lambda: f"xoxb-{random.randint(10**9, 10**10 - 1)}-{_pick(_LOWER36, 24)}",
    "stripe_key": lambda: "sk_test_" + _pick(_LOWER36, 24),
    "card": lambda: random.choice(_TEST_CARDS),
    "iban": _iban,
    "ssn": lambda: random.choice(_VOID_SSNS),
    "token": _token,
}


def fake_segment(name):
    """A random concrete path segment that driftbayes templates back to ``{name}``."""
    make = _FAKES.get(name)
    return make() if make is not None else _FAKES["id"]()
