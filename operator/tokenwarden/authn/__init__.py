"""The authenticator: is this token valid, who is it, what may it do."""
from tokenwarden.authn._credentials import extract_token
from tokenwarden.authn._index import Account, Identity, TokenIndex
from tokenwarden.authn._run import AuthenticatorOptions, run_authenticator, serve
from tokenwarden.authn._server import Authenticator, LastUsed
from tokenwarden.authn._verify import Verdict, permissions_of, verify

__all__ = [
    "Account",
    "Authenticator",
    "AuthenticatorOptions",
    "Identity",
    "LastUsed",
    "TokenIndex",
    "Verdict",
    "extract_token",
    "permissions_of",
    "run_authenticator",
    "serve",
    "verify",
]
