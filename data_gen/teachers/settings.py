"""The API teacher's settings: one dataclass, from which `data_gen.build` generates its flags.

A field's name is its flag's name, its default the flag's default, and its
metadata the flag's help and range (absl checks the range when it parses).
"""

from __future__ import annotations

import dataclasses
import typing

from absl import flags

BATCH_MAX_REQUESTS = 50_000  # the Batch API's limit per batch file


def _setting(default, help_text: str, at_least: float | None = None, at_most: float | None = None):
    bounds = {"lower_bound": at_least, "upper_bound": at_most}
    return dataclasses.field(default=default, metadata={"help": help_text, **bounds})


@dataclasses.dataclass(frozen=True)
class ApiSettings:
    model: str = _setting("gpt-3.5-turbo", "teacher model id on the server")
    base_url: str | None = _setting(None, "OpenAI-compatible base URL, e.g. http://localhost:8000/v1 "
                                          "(default: OpenAI, or the OPENAI_BASE_URL environment variable)")
    api_key_env: str = _setting("OPENAI_API_KEY", "environment variable holding the API key")
    temperature: float = _setting(0.7, "sampling temperature", 0.0)
    top_p: float = _setting(1.0, "nucleus sampling mass", 0.0, 1.0)
    max_tokens: int = _setting(512, "completion token limit; longer answers are rejected as truncated", 1)
    n_per_request: int = _setting(1, "samples asked for in one request (the API's n)", 1)
    concurrency: int = _setting(64, "requests in flight at once", 1)
    rpm: float = _setting(0.0, "requests-per-minute limit, retries included (0: none)", 0.0)
    tpm: float = _setting(0.0, "tokens-per-minute limit, retries included (0: none)", 0.0)
    max_retries: int = _setting(6, "retries of a failing request (429, 5xx, timeout, malformed reply)", 0)
    timeout: float = _setting(60.0, "seconds before one request times out", 0.01)
    backoff: float = _setting(1.0, "first retry delay in seconds (doubles each retry) unless Retry-After says", 0.0)
    unreachable_seconds: float = _setting(30.0, "stop the run when the server has sent no reply for this long "
                                                "while requests fail to connect or time out", 0.01)
    price_prompt: float = _setting(0.0, "US dollars per million prompt tokens, for the cost report", 0.0)
    price_completion: float = _setting(0.0, "US dollars per million completion tokens, for the cost report", 0.0)
    batch_api: bool = _setting(False, "send the requests through the OpenAI Batch API (half the price, answers "
                                      "within --batch_window); the --price_* flags are the live prices")
    batch_poll_seconds: float = _setting(30.0, "seconds between polls of the submitted batches", 0.01)
    batch_max_requests: int = _setting(BATCH_MAX_REQUESTS, "requests per batch file (the API allows 50,000 and "
                                                           "200 MB)", 1, BATCH_MAX_REQUESTS)
    batch_window: str = _setting("24h", "the batches' completion window")

    @property
    def server(self) -> str:
        """The server, as error messages name it."""
        return self.base_url or "the OpenAI API"

    @classmethod
    def define_flags(cls, flag_values: flags.FlagValues = flags.FLAGS) -> None:
        """One absl flag per field: the field's name, default, help and range."""
        types = typing.get_type_hints(cls)
        define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float}
        for field in dataclasses.fields(cls):
            bounds = {k: v for k in ("lower_bound", "upper_bound") if (v := field.metadata[k]) is not None}
            define.get(types[field.name], flags.DEFINE_string)(
                field.name, field.default, field.metadata["help"], flag_values=flag_values, **bounds)

    @classmethod
    def from_flags(cls, flag_values: flags.FlagValues = flags.FLAGS) -> ApiSettings:
        return cls(**{field.name: flag_values[field.name].value for field in dataclasses.fields(cls)})
