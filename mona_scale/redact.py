"""Secrets out of what we write down: logs, ``config.yaml``, the wandb config.

Shard locations may be shell commands with credentials in them (``pipe:curl -H
'Authorization: Bearer ...' https://host/x.tar?X-Amz-Signature=...``,
``pipe:AWS_SECRET_ACCESS_KEY=... aws s3 cp ...``). :func:`redact` replaces the secret part
of such strings with ``<redacted>`` and leaves the rest readable:

- every query-string value of a URL (signed URLs carry their signature, credential,
  expiry and tokens there);
- the password of ``scheme://user:password@host``;
- the value of credential headers (``Authorization``, ``Cookie``, ``X-Api-Key``,
  ``Private-Token``, any header whose name holds token / key / secret / auth);
- the value of environment-style assignments and command-line options whose name holds
  TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL or SIGNATURE (``AWS_SECRET_ACCESS_KEY=...``,
  ``--token ...``);
- the password of ``curl -u user:password`` style options;
- AWS access key ids (``AKIA...``) anywhere.

It is for display only: the original string is what runs.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["redact", "REDACTED"]

REDACTED = "<redacted>"

_VALUE = r"""(?:"[^"]*"|'[^']*'|[^\s'"&;|]+)"""
_SECRET_WORD = r"(?:TOKEN|SECRET|PASSW(?:OR)?D|PASS|KEY|CREDENTIAL|SIGNATURE|AUTH|SESSION|COOKIE)"
# ?a=1&b=2 in a URL (up to whitespace or a quote)
_QUERY = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"?]*\?)(?P<query>[^\s'\"]*)")
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:)[^\s@/'\"]+(?=@)")
_HEADER = re.compile(
    r"(?P<head>\b(?:authorization|proxy-authorization|cookie|set-cookie|"
    r"[\w-]*(?:token|key|secret|auth)[\w-]*)\s*:\s*)(?P<value>[^'\"\n]+)", re.IGNORECASE)
_ASSIGN = re.compile(rf"(?P<head>\b[\w.-]*{_SECRET_WORD}[\w.-]*=)(?P<value>{_VALUE})",
                     re.IGNORECASE)
_OPTION = re.compile(rf"(?P<head>(?<![\w-])--?[\w-]*{_SECRET_WORD}[\w-]*\s+)(?P<value>"
                     rf"(?!-){_VALUE})", re.IGNORECASE)
# curl / wget style user:password options
_USER_OPTION = re.compile(r"(?P<head>(?<![\w-])(?:-u|--user|--proxy-user)[\s=]+['\"]?"
                          r"[^\s:'\"]+:)(?P<value>[^\s'\"]+)")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def _redact_query(match: re.Match) -> str:
    params = []
    for part in match.group("query").split("&"):
        name, sep, _ = part.partition("=")
        params.append(f"{name}={REDACTED}" if sep else part)
    return match.group("head") + "&".join(params)


def _quoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return f"{value[0]}{REDACTED}{value[0]}"
    return REDACTED


def redact_text(text: str) -> str:
    """``text`` with credentials replaced by ``<redacted>`` (see the module docstring)."""
    text = _QUERY.sub(_redact_query, text)
    text = _USERINFO.sub(lambda m: m.group("head") + REDACTED, text)
    text = _HEADER.sub(lambda m: m.group("head") + REDACTED, text)
    text = _ASSIGN.sub(lambda m: m.group("head") + _quoted(m.group("value")), text)
    text = _USER_OPTION.sub(lambda m: m.group("head") + REDACTED, text)
    text = _OPTION.sub(lambda m: m.group("head") + _quoted(m.group("value")), text)
    return _AWS_KEY_ID.sub(REDACTED, text)


def redact(obj):
    """A copy of ``obj`` (a string, or nested dicts / lists / tuples of them, e.g. a config
    as a plain container) with credentials in every string replaced by ``<redacted>``.

    Args:
        obj: what is about to be logged or saved.

    Returns:
        The same structure; values that are not strings are returned unchanged.
    """
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    return obj
