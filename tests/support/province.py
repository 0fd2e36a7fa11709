"""A province in miniature, every part real: county brokers bridged into a province broker, faults while events flow.

Each county runs its own Mosquitto with the bridge `python -m fleet province-bridges` writes
(fleet/registration/province_bridges.py), through a TcpLink so the line can be cut; each center in it runs the
real edge agent program with its own center broker; two fleet ingest workers share the stream on the province
broker; the database is whatever URL is given (PostgreSQL in the test and the bench). Tickets are taken at every
edge's kiosk API all the time, while one worker is SIGKILLed and restarted, one county broker restarted and
another county's bridge cut and mended. Used by tests/test_province.py (small) and bench/province.py (larger).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy
from sqlmodel import Session

from fleet.auth.principal import CLI_USER
from fleet.devconfig.keys import KeyBox
from fleet.models import utcnow
from fleet.registration.province_bridges import bridge_config
from fleet.registration.service import issue_edge_credentials
from fleet.settings import Settings
from tests.support.centers import write_edge_config
from tests.support.processes import Program
from tests.support.tcp_link import TcpLink
from tests.support.waiting import wait_until
from tools.mosquitto import MosquittoBroker, free_port

DRAIN_TIMEOUT_S = 300  # a hang guard only
# The workers' shared server secret: the edge keys they sign each edge's event_ack with are sealed with it.
SERVER_SECRET = "province-test-server-secret-0123456789"


@dataclass
class Edge:
    county: int
    code: str
    base: str
    db: Path
    program: Program
    center_broker: MosquittoBroker
    asked: int = 0  # tickets asked for so far (some may fail while the agent is busy: the edge's table is the truth)


@dataclass
class ProvinceCounts:
    counties: int
    edges: int
    issued: int  # tickets issued at the edges
    stored: int  # issued events stored by the fleet
    distinct: int  # of those, distinct (center, event id)
    unconfirmed_left: int  # events still in the edges' outboxes or awaiting the fleet's acknowledgement


def center_code(county: int, center: int) -> str:
    return "4452%02d1%02d%03d" % (county + 2, center // 999 + 1, center % 999 + 1)


class Issuer(threading.Thread):
    """Takes tickets at one edge's kiosk API, one after the other, until stopped."""

    def __init__(self, edge: Edge) -> None:
        super().__init__(daemon=True, name="issuer-" + edge.code)
        self.edge = edge
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                try:
                    client.post(f"{self.edge.base}/api/tickets", json={"service": "A"})
                except httpx.HTTPError:
                    pass
                self.edge.asked += 1


class Province:
    def __init__(self, workdir: Path, database_url: str, counties: int = 2, centers_per_county: int = 1) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.county_count = counties
        self.centers_per_county = centers_per_county
        self.province: MosquittoBroker | None = None
        self.counties: list[MosquittoBroker] = []
        self.links: list[TcpLink] = []
        self.edges: list[Edge] = []
        self.workers: list[Program] = []
        self.issuers: list[Issuer] = []
        self.engine = sqlalchemy.create_engine(database_url)

    # --- set-up ------------------------------------------------------------------------------------------------

    def start(self) -> Province:
        brokers = self.workdir / "brokers"
        self.province = MosquittoBroker(brokers, "province", persistent=True).start()
        for worker in ("a", "b"):
            port = free_port()
            self.workers.append(Program(
                ["-m", "fleet", "--database-url", self.database_url, "--broker", self.province.url,
                 "--port", str(port)],
                self.workdir / f"worker-{worker}.log", f"http://127.0.0.1:{port}/healthz",
                env={"FLEET_MQTT_CLIENT_ID": f"fleet-ingest-{worker}",  # each its own session
                     "FLEET_DEVICE_KEY_SECRET": SERVER_SECRET}).start())
        for county in range(self.county_count):
            codes = [center_code(county, n) for n in range(self.centers_per_county)]
            link = TcpLink(self.province.port).start()
            self.links.append(link)
            settings = bridge_config(codes[0][:6], codes, f"127.0.0.1:{link.port}").splitlines()
            # Persistent: the bridge's queue and the edges' sessions survive the county broker's restart.
            self.counties.append(MosquittoBroker(brokers, f"county-{county}", persistent=True,
                                                 settings=settings).start())
            for code in codes:
                self.edges.append(self._start_edge(county, code))
        return self

    def _start_edge(self, county: int, code: str) -> Edge:
        center = MosquittoBroker(self.workdir / "brokers", f"center-{code}").start()
        http_port = free_port()
        directory = self.workdir / f"edge-{code}"
        config = write_edge_config(directory, center.port, self.counties[county].port, http_port, printer="none",
                                   code=code)
        # The edge key the fleet issues with the edge's credentials: without it the edge takes no event_ack and
        # keeps every event (edge_agent/adapters/uplink.py).
        with Session(self.engine) as session:
            issued = issue_edge_credentials(session, KeyBox.from_settings(Settings(device_key_secret=SERVER_SECRET)),
                                            CLI_USER, code, utcnow())
            session.commit()
        county_section = f"[brokers.county]\nport = {self.counties[county].port}\n"
        text = config.read_text(encoding="utf-8")
        assert county_section in text
        config.write_text(text.replace(county_section, f'{county_section}edge_key = "{issued.edge_key_hex}"\n'),
                          encoding="utf-8")
        program = Program(["-m", "edge_agent", "--config", str(config)], self.workdir / f"edge-{code}.log",
                          f"http://127.0.0.1:{http_port}/api/health").start()
        return Edge(county, code, f"http://127.0.0.1:{http_port}", directory / "data" / "edge.sqlite3", program,
                    center)

    def stop(self) -> None:
        self.stop_issuing()
        for edge in self.edges:
            edge.program.stop()
        for worker in self.workers:
            worker.stop()
        for broker in [*self.counties, *(e.center_broker for e in self.edges), self.province]:
            if broker:
                broker.stop()
        for link in self.links:
            link.stop()
        self.engine.dispose()

    # --- what each side holds ----------------------------------------------------------------------------------

    def edge_tickets(self, edge: Edge) -> list[str]:
        with sqlite3.connect(edge.db) as conn:
            return [row[0] for row in conn.execute("SELECT number FROM tickets")]

    def stored_issued(self) -> list[tuple[str, str, str]]:
        """(center, event id, ticket) of every issued event the fleet stored."""
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(
                "SELECT center_code, event_id, ticket FROM ticketevent WHERE kind = 'issued'")]

    def unconfirmed(self, edge: Edge) -> int:
        """The edge's events the fleet has not confirmed: in its outbox (not yet taken by the county broker) and
        awaiting the fleet's event_ack (taken, not yet known stored)."""
        uplink = httpx.get(f"{edge.base}/api/health", timeout=5).json()["county_uplink"]
        return uplink["outbox"] + uplink["awaiting_ack"]

    def issued_count(self, edge: Edge) -> int:
        return len(self.edge_tickets(edge))

    # --- the run -----------------------------------------------------------------------------------------------

    def start_issuing(self) -> None:
        self.issuers = [Issuer(edge) for edge in self.edges]
        for issuer in self.issuers:
            issuer.start()

    def stop_issuing(self) -> None:
        for issuer in self.issuers:
            issuer.stopping.set()
        for issuer in self.issuers:
            issuer.join(30)
        self.issuers = []

    def issue_more(self, tickets: int, what: str) -> None:
        """Wait until every edge has issued `tickets` more (the faults last that long, counted in events)."""
        marks = {edge.code: self.issued_count(edge) for edge in self.edges}
        wait_until(lambda: all(self.issued_count(e) >= marks[e.code] + tickets for e in self.edges), 300,
                   f"{tickets} more tickets at every edge {what}")

    def stored_from(self, centers: set[str]) -> bool:
        return centers <= {center for center, _event, _ticket in self.stored_issued()}

    def run_faults(self, tickets_per_fault: int) -> dict[str, int]:
        """Events flow through the whole time; one fault after the other, each lasting `tickets_per_fault` tickets
        at every edge. Returns what shows each fault took hold (a test asserts on it)."""
        seen: dict[str, int] = {}
        self.start_issuing()
        wait_until(lambda: self.stored_from({e.code for e in self.edges}), 120,
                   "a first event of every center stored (edges, bridges, workers all up)")

        killed = self.workers[0]
        seen["killed_worker_status"] = killed.stop(signal.SIGKILL) or 0  # its share waits in its session
        self.issue_more(tickets_per_fault, "while a worker is dead")
        killed.start()

        restarted = self.counties[0]
        restarted.stop()  # the county broker goes down: its edges keep issuing into their outboxes
        self.issue_more(tickets_per_fault, "while county 0's broker is down")
        # Nothing of what they issued meanwhile can have been confirmed: it all waits in their outboxes.
        seen["held_while_county_down"] = min(self.unconfirmed(e) for e in self.edges if e.county == 0)
        restarted.start()

        cut = self.links[-1]
        connections = cut.connections
        cut.cut()  # the last county's line to the province is cut; its broker and edges stay up
        self.issue_more(tickets_per_fault, "while the last county's bridge is cut")
        last = self.county_count - 1
        seen["held_while_bridge_cut"] = min(self.unconfirmed(e) for e in self.edges if e.county == last)
        cut.mend()
        wait_until(lambda: cut.connections > connections, 120, "the bridge connected again")
        seen["bridge_connections"] = cut.connections

        self.issue_more(tickets_per_fault, "after the faults")
        self.stop_issuing()
        return seen

    def wait_drained(self) -> None:
        expected = sum(self.issued_count(edge) for edge in self.edges)
        wait_until(lambda: len(self.stored_issued()) >= expected, DRAIN_TIMEOUT_S, "every event stored")
        for edge in self.edges:
            wait_until(lambda e=edge: self.unconfirmed(e) == 0, DRAIN_TIMEOUT_S, f"{edge.code}'s outbox drained")

    def counts(self) -> ProvinceCounts:
        stored = self.stored_issued()
        return ProvinceCounts(
            counties=self.county_count, edges=len(self.edges),
            issued=sum(self.issued_count(edge) for edge in self.edges), stored=len(stored),
            distinct=len({(center, event) for center, event, _ticket in stored}),
            unconfirmed_left=sum(self.unconfirmed(edge) for edge in self.edges))

    def mismatches(self) -> dict[str, tuple[int, int]]:
        """Centers whose stored tickets differ from those issued: code -> (issued, stored)."""
        stored = self.stored_issued()
        found = {}
        for edge in self.edges:
            at_edge = sorted(self.edge_tickets(edge))
            at_fleet = sorted(ticket for center, _event, ticket in stored if center == edge.code)
            if at_edge != at_fleet:
                found[edge.code] = (len(at_edge), len(at_fleet))
        return found
