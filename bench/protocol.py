"""A minimal Socket.IO v5 client (Engine.IO v4, websocket transport only) on aiohttp.

Just what the bench needs, so thousands of them fit on one asyncio loop: open the websocket, answer
Engine.IO pings, connect one namespace, emit with an acknowledgement, and hand every received event
to a callback together with the time it arrived.

    frames:  0{...} open   2 ping -> 3 pong   40/jobs, connect   42/jobs,N["subscribe",{...}] emit
             42/jobs,["progress",{...}] event   43/jobs,N[{...}] ack   44/jobs,{...} refused
"""

import asyncio
import itertools
import json
import time

import aiohttp


class SocketIOError(Exception):
    """The server refused the namespace, or the connection ended before an answer came."""


class SocketIOClient:
    """One websocket speaking Socket.IO to one namespace; ``on_event(name, args, received_at)``."""

    def __init__(self, session, url, namespace, on_event):
        self.session = session
        self.url = url.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        self.prefix = "" if namespace == "/" else namespace + ","
        self.on_event = on_event
        self.ws = None
        self._reader = None
        self._connected = None
        self._acks = {}
        self._ids = itertools.count(1)

    async def connect(self, timeout=30.0):
        """Open the websocket and the namespace; raises SocketIOError or a network error."""
        loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self.ws = await self.session.ws_connect(self.url, timeout=aiohttp.ClientWSTimeout(ws_close=2),
                                                max_msg_size=0, autoping=True)
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected, timeout)

    async def call(self, event, data, timeout=30.0):
        """Emit ``event`` with an ack id and return the ack's first argument."""
        ack_id = next(self._ids)
        answer = self._acks[ack_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_str(f"42{self.prefix}{ack_id}{json.dumps([event, data])}")
        try:
            args = await asyncio.wait_for(answer, timeout)
        finally:
            self._acks.pop(ack_id, None)
        return args[0] if args else None

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self):
        try:
            async for frame in self.ws:
                received = time.time()
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break
                data = frame.data
                if data == "2":
                    await self.ws.send_str("3")
                elif data.startswith("4"):
                    self._packet(data[1:], received)
                elif data == "1":
                    break
                elif data.startswith("0") and self.prefix:
                    await self.ws.send_str(f"40{self.prefix}")
                elif data.startswith("0"):
                    await self.ws.send_str("40")
        finally:
            self._fail(SocketIOError("connection closed"))

    def _packet(self, packet, received):
        kind, body = packet[0], packet[1:]
        if self.prefix:
            if not body.startswith(self.prefix):
                return  # another namespace
            body = body[len(self.prefix):]
        if kind == "2":
            args = json.loads(body[body.index("["):])
            self.on_event(args[0], args[1:], received)
        elif kind == "3":
            start = body.index("[")
            answer = self._acks.get(int(body[:start]))
            if answer is not None and not answer.done():
                answer.set_result(json.loads(body[start:]))
        elif kind == "0" and not self._connected.done():
            self._connected.set_result(json.loads(body) if body else {})
        elif kind == "4":
            self._fail(SocketIOError(f"namespace refused: {body}"))

    def _fail(self, error):
        waiting = [self._connected, *self._acks.values()]
        for future in waiting:
            if future is not None and not future.done():
                future.set_exception(error)
