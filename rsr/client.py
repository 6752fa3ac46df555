"""Talking to OpenAI-compatible servers: one client and one retry policy,
shared by the `openai` sampler, the `judge` verifier and the `reward-model`
verifier's endpoint.

The default transport is rsr's own small client over aiohttp: it posts the
JSON body and reads the JSON reply, with the headers, URL and timeouts worked
out once per client. The openai SDK does the same request in about 1.2 ms
more CPU per request (its request building, header and URL models, option
validation: bench/orchestration.py measures both), which at a few thousand
requests a second is most of a core. `transport: httpx` sends requests
through the openai SDK instead (its httpx transport).

Retries happen here (the SDK's are off), with exponential backoff, full
jitter and the server's Retry-After honoured. Every failure reaches callers
as RequestFailed, whichever transport raised it.
"""

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from dataclasses import dataclass

from .config import SAMPLER
from .errors import ConfigError

log = logging.getLogger(__name__)

# The key sent to servers that need none (vLLM, SGLang, llama.cpp): the SDK
# refuses to build a client without one.
NO_KEY = "no-key"


class RequestFailed(Exception):
    "A request that failed; retryable says whether trying again may help."

    def __init__(self, message, retryable=True, retry_after=None, status=None, kind="error"):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.kind = kind


@dataclass
class RetryPolicy:
    "How often and how patiently to retry a failed request."

    max_attempts: int = SAMPLER.max_retries + 1
    base_delay: float = SAMPLER.retry_base_delay
    max_delay: float = 30.0
    # A Retry-After longer than this is cut to it: one rude header must not
    # stall a run for an hour.
    max_retry_after: float = 120.0

    def delay(self, attempt, retry_after=None):
        "Seconds to wait before attempt number attempt+1 (attempt counts from 1)."
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), backoff)
        return backoff


async def with_retries(call, policy, on_retry=None):
    """Await call() until it succeeds, retrying RequestFailed(retryable=True).

    Raises the last RequestFailed once attempts run out or it is not retryable.
    on_retry(error, attempt, delay) is told about every retry.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except RequestFailed as ex:
            if not ex.retryable or attempt >= policy.max_attempts:
                raise
            delay = policy.delay(attempt, ex.retry_after)
            if on_retry is not None:
                on_retry(ex, attempt, delay)
            log.info("retrying after %s (attempt %d, waiting %.2fs)", ex, attempt, delay)
            await asyncio.sleep(delay)


def parse_retry_after(headers):
    "Seconds from a Retry-After (or retry-after-ms) header, or None."
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def classify(ex) -> RequestFailed:
    "Turn an exception from the openai SDK (or its transport) into RequestFailed."
    import openai

    if isinstance(ex, RequestFailed):
        return ex
    if isinstance(ex, openai.APITimeoutError):
        if _is_connect_error(ex.__cause__):
            # A connect timeout, or "connection refused" reported as one.
            return RequestFailed(f"connection error: {_root(ex)}", kind="connection")
        return RequestFailed(f"timeout: {ex}", kind="timeout")
    if isinstance(ex, openai.APIConnectionError):
        cause = ex.__cause__ or ex
        kind = "connection" if _is_connect_error(ex) else "disconnect"
        return RequestFailed(f"connection error: {cause}", kind=kind)
    if isinstance(ex, openai.APIStatusError):
        return http_failure(ex.status_code, error_detail(ex.body) or ex.message,
                            getattr(ex.response, "headers", None))
    if isinstance(ex, (openai.APIResponseValidationError, ValueError, KeyError, TypeError)):
        return RequestFailed(f"malformed response: {_short(str(ex))}", kind="malformed")
    if isinstance(ex, (asyncio.TimeoutError, ConnectionError, OSError)):
        return RequestFailed(f"connection error: {ex}", kind="connection")
    raise ex


def scrub(error, secret):
    """error with every occurrence of secret (the API key) in its message
    replaced: servers echo keys in error text ("Incorrect API key provided:
    sk-..."), and that text is stored in rollouts.error and logged."""
    if secret and secret != NO_KEY and len(secret) >= 6 and secret in str(error):
        error.args = (str(error).replace(secret, "[redacted]"),) + error.args[1:]
    return error


def _root(error):
    "The innermost cause of an exception, for a readable message."
    for _ in range(6):
        inner = error.__cause__ or error.__context__
        if inner is None:
            break
        error = inner
    return error


# Exception class names (from httpx, aiohttp and the OS) that mean "could not
# connect at all", as opposed to a request that started and then failed.
CONNECT_ERRORS = {"ConnectError", "ConnectTimeout", "ClientConnectorError",
                  "ConnectionRefusedError", "ClientConnectorDNSError"}


def _is_connect_error(error):
    "True when the chain of causes shows a failure to connect at all."
    for _ in range(6):
        if error is None:
            return False
        if type(error).__name__ in CONNECT_ERRORS:
            return True
        error = error.__cause__ or error.__context__
    return False


def _short(text, limit=300):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def resolve_api_key(api_key=None):
    "The key to send: the option, else OPENAI_API_KEY, else a placeholder."
    return api_key or os.environ.get("OPENAI_API_KEY") or NO_KEY


def make_async_client(base_url=None, api_key=None, timeout=SAMPLER.timeout,
                      transport=SAMPLER.transport):
    """A client for an OpenAI-compatible server: rsr's own over aiohttp, or
    the openai SDK's (httpx). Both have post_json(path, body), api_key and close()."""
    if transport == "aiohttp":
        return HTTPClient(base_url, api_key, timeout)
    if transport == "httpx":
        return SDKClient(base_url, api_key, timeout)
    raise ConfigError(f"transport must be aiohttp or httpx, not {transport!r}")


def resolve_base_url(base_url=None, source="--base-url"):
    """The server's URL: the option, else OPENAI_BASE_URL, else OpenAI's.

    A URL that is given is checked first (ConfigError): an empty one is a
    mistake, not a request for the default."""
    if base_url is not None:
        return check_base_url(base_url, source)
    if os.environ.get("OPENAI_BASE_URL"):
        return check_base_url(os.environ["OPENAI_BASE_URL"], "OPENAI_BASE_URL")
    return "https://api.openai.com/v1"


def check_base_url(url, source="--base-url"):
    """url without a trailing slash, or ConfigError unless it is an http(s)
    URL with a host and a port in range. Checked before any request, so a
    typo costs no budget and reads as one line."""
    from urllib.parse import urlsplit

    example = "e.g. http://127.0.0.1:8000/v1"
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise ConfigError(f"{source} is empty: give the server's URL, {example}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as ex:
        raise ConfigError(f"{source} {url!r} is not a valid URL ({ex}), {example}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{source} {url!r} is not an http:// or https:// URL, {example}")
    if not parts.hostname:
        raise ConfigError(f"{source} {url!r} names no host, {example}")
    return text.rstrip("/")


class HTTPClient:
    """POSTs JSON to an OpenAI-compatible server over one aiohttp session.

    timeout bounds connecting and each wait for data from the server (for a
    reply that is not streamed: the wait for the whole reply). Proxies from
    the environment (HTTPS_PROXY, NO_PROXY, ...) are honoured; they are read
    once, when the session opens.
    """

    def __init__(self, base_url=None, api_key=None, timeout=SAMPLER.timeout):
        from .version import __version__

        self.base_url = resolve_base_url(base_url)
        self.api_key = resolve_api_key(api_key)
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {self.api_key}",
                        "Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": f"rsr/{__version__}"}
        # As the openai SDK does: an organisation and project from the environment.
        for header, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"),
                                 ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(variable):
                self.headers[header] = os.environ[variable]
        self._session = None
        self._proxy = self._proxy_auth = None

    def _open(self):
        import aiohttp
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        try:
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self.base_url))
        except LookupError:
            self._proxy = self._proxy_auth = None
        # rsr bounds concurrency itself (a semaphore per sampler or verifier),
        # so the pool does not: limit=0.
        self._session = aiohttp.ClientSession(
            headers=self.headers, connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                          sock_read=self.timeout),
        )

    async def post_json(self, path, body):
        "POST body as JSON to base_url + path; the reply's JSON, or RequestFailed."
        if self._session is None:
            self._open()
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            async with self._session.post(self.base_url + path, data=data, proxy=self._proxy,
                                          proxy_auth=self._proxy_auth) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except Exception as ex:  # transport_error() re-raises anything it does not know
            raise scrub(transport_error(ex, self.timeout), self.api_key) from None
        if status >= 400:
            raise scrub(status_error(status, raw, headers), self.api_key)
        try:
            return json.loads(raw)
        except ValueError as ex:  # UnicodeDecodeError is a ValueError too
            raise RequestFailed(f"malformed response: {_short(ex)}", kind="malformed") from None

    async def close(self):
        if self._session is not None:
            await self._session.close()
            self._session = None


def transport_error(ex, timeout):
    "An exception from aiohttp (or the OS) as RequestFailed; anything else is re-raised."
    import aiohttp

    if isinstance(ex, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return RequestFailed(f"connection error: {ex}", kind="connection")
    if isinstance(ex, asyncio.TimeoutError):
        return RequestFailed(f"timeout: no reply within {timeout:g}s", kind="timeout")
    if isinstance(ex, (aiohttp.ClientError, OSError)):
        # Connected, then the server closed or reset the connection, or sent
        # something that is not HTTP.
        return RequestFailed(f"connection error: {_short(ex) or type(ex).__name__}",
                             kind="disconnect")
    raise ex


def status_error(status, raw, headers):
    "RequestFailed for an HTTP error status, with the server's own message when it sent one."
    try:
        detail = error_detail(json.loads(raw))
    except ValueError:
        detail = None
    return http_failure(status, detail or raw.decode("utf-8", "replace").strip() or "(empty body)",
                        headers)


def error_detail(data):
    """The message in an error body ({"error": {"message": ...}}, {"message": ...}, ...), or None."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    return (error if isinstance(error, str) else None) or data.get("message") or data.get("detail")


def http_failure(status, detail, headers):
    "RequestFailed for an HTTP error status; 408, 409, 425, 429 and 5xx are worth retrying."
    retryable = status in (408, 409, 425, 429) or status >= 500
    return RequestFailed(f"HTTP {status}: {_short(detail)}", retryable, parse_retry_after(headers),
                         status, kind=f"http_{status}")


class SDKClient:
    "The openai SDK's AsyncOpenAI client (httpx transport, SDK retries off) behind post_json."

    def __init__(self, base_url=None, api_key=None, timeout=SAMPLER.timeout):
        import openai

        self.api_key = resolve_api_key(api_key)
        self.sdk = openai.AsyncOpenAI(base_url=resolve_base_url(base_url), api_key=self.api_key,
                                      timeout=timeout,
                                      max_retries=0)
        self.base_url = str(self.sdk.base_url).rstrip("/")

    async def post_json(self, path, body):
        try:
            return await self.sdk.post(path, body=body, cast_to=object)
        except Exception as ex:  # classify() re-raises anything it does not know
            raise scrub(classify(ex), self.api_key) from None

    async def close(self):
        await self.sdk.close()


async def chat_completion(client, model, messages, extra_body=None, **params):
    """One chat completion request; returns the reply as a dict (the server's JSON).

    Any failure is raised as RequestFailed. params go into the request body as
    they are; extra_body (top_k, min_p, ...) is merged into it.
    """
    body = {"model": model, "messages": messages, **params}
    if extra_body:
        body.update(extra_body)
    reply = await client.post_json("/chat/completions", body)
    if not isinstance(reply, dict):
        raise RequestFailed(f"malformed response: not a JSON object: {_short(repr(reply), 200)}",
                            kind="malformed")
    return reply


def choices_of(reply):
    """The reply's choices as (index, text, reasoning, finish_reason), in index order.

    Raises RequestFailed for a reply without a list of choices or a choice
    without a message.
    """
    choices = reply.get("choices")
    if not isinstance(choices, list):
        raise RequestFailed("malformed response: no choices list", kind="malformed")
    if not choices:
        raise RequestFailed("server returned no choices", kind="no_choices")
    out = []
    for position, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise RequestFailed("malformed response: a choice has no message", kind="malformed")
        text = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if not isinstance(text, str) or not isinstance(reasoning, (str, type(None))):
            raise RequestFailed("malformed response: a message's content is not text", kind="malformed")
        index = choice.get("index")
        out.append((index if isinstance(index, int) else position, text, reasoning,
                    choice.get("finish_reason")))
    out.sort(key=lambda c: c[0])
    return out
