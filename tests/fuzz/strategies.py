"""Hypothesis strategies for what a hostile client sends the authenticator."""
from __future__ import annotations

import base64
import json
from urllib.parse import quote

from hypothesis import strategies as st

from tokenwarden.tokens._format import PAYLOAD_LENGTH, _checksum

# The claims a workload token carries, and hostile values for them.
CLAIMS = ("aud", "exp", "sub", "iat", "nbf", "iss", "kubernetes.io")
AUDIENCE = "tokenwarden"
# A well-formed service token, fixed: the fuzz tier draws nothing at random but through hypothesis.
_BODY = "twst_" + "Fuzz0" * (PAYLOAD_LENGTH // 5) + "F" * (PAYLOAD_LENGTH % 5)
VALID_TOKEN = _BODY + _checksum(_BODY)
NUMBERS = st.one_of(
    st.integers(),                                              # any size
    st.integers(-9, 9).map(lambda digit: digit * 10 ** 399),  # 400 digits
    st.floats(),                                                # NaN and Infinity, which json writes
    st.sampled_from([0, 1_800_000_000, 253_402_300_800, 253_402_300_801, 2 ** 63, -1]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _dumps(value: object) -> bytes:
    return json.dumps(value).encode()


def jwt_of(payload: object, header: object = None) -> str:
    """A JWT over the JSON of ``payload`` and ``header`` (alg RS256 by default), signed by no one."""
    return f"{b64url(_dumps(header or {'alg': 'RS256'}))}.{b64url(_dumps(payload))}.c2ln"


@st.composite
def nested(draw, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    """JSON nested from a few levels to far past the parser's recursion limit, closed or not."""
    depth = draw(st.sampled_from([2, 900, 1000, 1100, 3000, 6000]))
    return opener * depth + (closer * depth if draw(st.booleans()) else b"")


def claims_payloads() -> st.SearchStrategy[bytes]:
    """A JWT payload: claims of any type, plausible ones, nested ones, or bytes that are no JSON."""
    plausible = st.fixed_dictionaries({"aud": st.one_of(st.just(AUDIENCE), st.lists(st.sampled_from(
        [AUDIENCE, "other", ""]), max_size=3), JSON), "exp": NUMBERS}, optional={
        "sub": st.one_of(st.from_regex(r"system:serviceaccount:[a-z0-9-]{1,8}:[a-z0-9-]{1,8}", fullmatch=True),
                         JSON)})
    hostile = st.dictionaries(st.sampled_from(CLAIMS), JSON, max_size=5)
    return st.one_of(plausible.map(_dumps), hostile.map(_dumps), JSON.map(_dumps), nested(),
                     st.builds(lambda n: b'{"aud": "tokenwarden", "exp": ' + n, nested()), st.binary(max_size=64))


def headers_json(kid: str = "") -> st.SearchStrategy[bytes]:
    """A JWT header: the issuer's alg and ``kid`` (so the signature is what is checked), any values, junk."""
    return st.one_of(st.just(b'{"alg": "RS256"}'), st.sampled_from(["RS256", "ES256", "none", "HS256"]).map(
                         lambda alg: _dumps({"alg": alg, "kid": kid})),
                     st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), JSON, max_size=3).map(_dumps),
                     nested(b"{", b"}"), st.builds(lambda n: b'{"alg": ' + n, nested()), st.binary(max_size=32))


def jwts(kid: str = "") -> st.SearchStrategy[str]:
    """Three base64url parts (the shape a workload token has) over hostile JSON or bytes."""
    signature = st.one_of(st.binary(min_size=1, max_size=64).map(b64url), st.from_regex(r"[A-Za-z0-9_-]{1,20}",
                                                                                      fullmatch=True))
    return st.builds(lambda h, p, s: f"{b64url(h)}.{b64url(p)}.{s}", headers_json(kid), claims_payloads(), signature)


def tokens() -> st.SearchStrategy[str]:
    """Anything a header can carry as a token: JWT-shaped, prefixed like ours, or any text."""
    prefixed = st.builds(lambda prefix, tail: prefix + tail, st.sampled_from(["twst_", "twik_", "twst", "_"]),
                         st.text(alphabet=st.characters(codec="ascii"), max_size=80))
    near_miss = st.builds(lambda at, char: VALID_TOKEN[:at] + char + VALID_TOKEN[at + 1:], st.integers(0, 60),
                          st.characters(codec="ascii")).filter(lambda token: token != VALID_TOKEN)
    return st.one_of(jwts(), prefixed, near_miss, st.text(max_size=200),
                     st.text(alphabet=st.characters(codec="latin-1"), max_size=300))


# Text a header may carry (what aiohttp's parser lets through to the handler), and any text,
# control characters and CR LF included (sent as UTF-8 bytes; mostly refused by the parser).
HEADER_TEXT = st.one_of(st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs")), max_size=300),
                        st.text(max_size=300))
SCHEMES = st.sampled_from(["Bearer", "bearer", "Basic", "ApiKey", "Token", "Otel", "", "Digest"])


def credential_headers() -> st.SearchStrategy[dict[str, str]]:
    """Authorization (any scheme, basic with any base64), X-API-Key, project headers."""
    basic = st.builds(lambda user, token: "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode(),
                      st.text(max_size=10), tokens())
    authorization = st.one_of(st.builds(lambda s, t: f"{s} {t}", SCHEMES, st.one_of(tokens(), HEADER_TEXT)), basic,
                              HEADER_TEXT)
    return st.fixed_dictionaries({}, optional={
        "Authorization": authorization, "X-API-Key": st.one_of(tokens(), HEADER_TEXT),
        "projectID": HEADER_TEXT, "X-Project-ID": HEADER_TEXT})


def query_strings() -> st.SearchStrategy[str]:
    """permission= and project= with any value, percent-encoded or raw, and junk."""
    raw = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?"), max_size=40)
    value = st.one_of(st.text(max_size=40).map(quote), raw, st.text(max_size=40),
                      st.sampled_from(["write", "read", "ingest", "%ff%fe", "%", "%zz", "a&b=c", "shop"]))
    pair = st.builds(lambda key, v: f"{key}={v}", st.sampled_from(["permission", "project", "x", ""]), value)
    return st.lists(pair, max_size=4).map("&".join)


def review_bodies() -> st.SearchStrategy[bytes]:
    """TokenReview bodies: well-formed with hostile fields, any JSON, nested JSON, any bytes."""
    spec = st.fixed_dictionaries({}, optional={"token": st.one_of(tokens(), JSON), "audiences": st.one_of(
        st.lists(st.sampled_from([AUDIENCE, "https://kube", ""]), max_size=3), JSON)})
    review = st.fixed_dictionaries({"spec": st.one_of(spec, JSON)}, optional={
        "apiVersion": st.one_of(st.sampled_from(["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]),
                                JSON), "kind": JSON})
    return st.one_of(review.map(_dumps), JSON.map(_dumps), nested(), nested(b'{"a":', b"}"),
                     st.builds(lambda n: b'{"spec": {"token": "t", "audiences": ' + n, nested()),
                     st.binary(max_size=200))
