"""`clonewatch call FILE --whip URL`: play a recording into a service as a WebRTC call.

A WHIP (RFC 9725) client on aiortc: the file is decoded and paced in real time by aiortc's
media player, offered with all candidates gathered (no trickle), and the session is
deleted once the file has been played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from streamer.errors import IngressError

logger = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 15.0
TAIL_S = 1.0  # let the last packets arrive before hanging up
CALL_ID_HEADER = "X-Clonewatch-Call-Id"


class WhipCallError(IngressError):
    """The WHIP endpoint refused the call or could not be reached."""


async def place_whip_call(
    path: Path, url: str, token: str | None, print_call_id: bool = True
) -> str:
    """Stream `path` to the WHIP endpoint `url` until it ends; returns the service's call id.

    Raises:
        WhipCallError: the endpoint answered with an error or is unreachable.
        OSError: the file cannot be opened.
    """
    # Opening probes the container (blocking I/O): off the loop.
    player = await asyncio.get_running_loop().run_in_executor(None, MediaPlayer, str(path))
    if player.audio is None:
        raise WhipCallError(f"{path}: no audio stream")
    ended = asyncio.Event()
    player.audio.on("ended", ended.set)
    pc = RTCPeerConnection()
    pc.addTrack(player.audio)
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession(timeout=timeout) as http:
            location, call_id, answer = await _post_offer(
                http, url, pc.localDescription.sdp, headers
            )
            if print_call_id:
                print(call_id, flush=True)
            await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await ended.wait()
            await asyncio.sleep(TAIL_S)
            async with http.delete(location, headers=headers) as resp:
                if resp.status not in (200, 204, 404):
                    logger.warning("WHIP DELETE answered %s", resp.status)
    except aiohttp.ClientError as exc:
        raise WhipCallError(f"{url}: {exc}") from exc
    finally:
        with contextlib.suppress(Exception):
            player.audio.stop()
        await pc.close()
    return call_id


async def _post_offer(
    http: aiohttp.ClientSession, url: str, offer: str, headers: dict[str, str]
) -> tuple[str, str, str]:
    async with http.post(url, data=offer, headers=headers) as resp:
        body = await resp.text()
        if resp.status != 201:
            raise WhipCallError(f"{url} answered {resp.status}: {body.strip()[:200]}")
        if "Location" not in resp.headers:
            raise WhipCallError(f"{url} answered 201 without a Location")
        location = urljoin(url, resp.headers["Location"])
        return location, resp.headers.get(CALL_ID_HEADER, location), body
