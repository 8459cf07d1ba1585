"""Text a scenario may hold, as validated types: one line, a mail address, a body, a name.

Text that reaches a header, an SMTP command, a URL or a daemon's config is one line
(no CR, LF or other control character): a line break would inject another command.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from lab.model.schema import hinted


def _one_line(v: str) -> str:
    if re.search(r"[\x00-\x1f\x7f]", v):
        raise ValueError(
            hinted(
                "the text holds a line break or another control character",
                "a header, an address or an SMTP command is one line (CR/LF would inject another)",
            )
        )
    return v


def _address(v: str) -> str:
    _one_line(v)
    if not re.fullmatch(r"[^\s<>@]{1,64}@[^\s<>@]{1,253}", v):
        raise ValueError(hinted(f"'{v}' is not a mail address", "write it like alice@projet.dz"))
    return v


def _body(v: str) -> str:
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", v):
        raise ValueError("the body holds a control character (only line breaks and tabs are text)")
    return v


def _file_name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", v):
        raise ValueError(hinted(f"'{v}' is not a plain file name", "letters, digits, '.', '_' and '-', like eicar.com"))
    return v


#: one line of text: no CR, LF or other control characters
Line = Annotated[str, Field(max_length=998), AfterValidator(_one_line)]
Address = Annotated[str, AfterValidator(_address)]
Body = Annotated[str, Field(max_length=1_000_000), AfterValidator(_body)]
Name = Annotated[str, Field(max_length=253), AfterValidator(_one_line)]
#: a plain file name (an attachment's): no path, no spaces, no quotes
FileName = Annotated[str, AfterValidator(_file_name)]


def _delay_text(v: str) -> str:
    if not re.fullmatch(r"\d{1,6}(\.\d{1,3})?(us|ms|s)", v):
        raise ValueError(hinted(f"'{v}' is not a duration", "write it like 20ms, 1.5s or 500us"))
    return v


#: a duration as written in a topology: 20ms, 1.5s, 500us
DelayText = Annotated[str, AfterValidator(_delay_text)]


_URL = re.compile(r"(https?)://([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?)(:\d{1,5})?(/[A-Za-z0-9._~/%?=&+-]{0,500})?")


def _url(v: str) -> str:
    m = _URL.fullmatch(v)
    if m and m.group(4) and not 1 <= int(m.group(4)[1:]) <= 65535:
        raise ValueError(hinted(f"'{v}': port {m.group(4)[1:]} is not a TCP port", "a port is 1-65535, e.g. :8080"))
    if not m:
        raise ValueError(
            hinted(
                f"'{v}' is not a URL the lab fetches",
                "write http://www.partenaire.dz/ or https://host/path (lower-case host; no spaces, quotes or fragments)",
            )
        )
    return v


#: a URL a step fetches: http or https, a host name, an optional port and a plain path
Url = Annotated[str, AfterValidator(_url)]
