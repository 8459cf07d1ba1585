"""Text a step may carry, as validated types: one line (headers, addresses, commands)
or a body.  Every value that reaches a header, an SMTP command, a config file or a
command line is one of these, checked before anything runs."""

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


#: one line of text: no CR, LF or other control characters
Line = Annotated[str, Field(max_length=998), AfterValidator(_one_line)]
Address = Annotated[str, AfterValidator(_address)]
Body = Annotated[str, Field(max_length=1_000_000), AfterValidator(_body)]
Name = Annotated[str, Field(max_length=253), AfterValidator(_one_line)]
