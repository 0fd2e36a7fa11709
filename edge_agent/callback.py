"""A resident who gave a 差评 leaves a phone number for its callback (回访), at the kiosk.

The number is personal data, kept only as long as it takes to deliver it: it goes into the outbox as one
callback_phone message (docs/protocol.md) in the same transaction as the check that the ticket has a 差评
today, and nowhere else on the edge. The uplink keeps it until the fleet acknowledges it and then deletes it;
the store and the awaiting-ack table run with SQLite's secure_delete, so a deleted row is overwritten. An edge
without its edge key takes no number: it could never take the fleet's acknowledgement, and would keep it. No
log line names the number, and a refusal never repeats it.
"""

from __future__ import annotations

import logging
import re
import uuid

from edge_agent.queue.service import QueueError, QueueService
from protocol import messages, topics

log = logging.getLogger(__name__)

# A mobile number: 11 digits, 1 then 3-9. A landline with its area code (区号): 0, then 2-3 more digits of the
# area code and a 7- or 8-digit number: 10 to 12 digits in all (010 12345678, 0758 1234567).
MOBILE = re.compile(r"1[3-9][0-9]{9}")
LANDLINE = re.compile(r"0[1-9][0-9]{8,10}")
SEPARATORS = re.compile(r"[\s\-]")
PHONE_REFUSED = "请输入11位手机号码，或带区号的固定电话号码"


def checked_phone(text: str) -> str:
    """The phone number as digits only, or QueueError (whose text does not repeat what was typed)."""
    digits = SEPARATORS.sub("", text or "")
    if MOBILE.fullmatch(digits) or LANDLINE.fullmatch(digits):
        return digits
    raise QueueError(PHONE_REFUSED)


class CallbackPhones:
    """Takes callback phone numbers for today's 差评 and queues them for the county."""

    def __init__(self, queue: QueueService) -> None:
        self.queue = queue

    def leave(self, ticket_number: str, phone_text: str) -> str:
        """Queue `phone_text` for the callback of ticket `ticket_number`'s 差评 today; returns the ticket number."""
        queue = self.queue
        if queue.config.edge_key is None:
            # Without the edge key no acknowledgement from the fleet is taken (event_ack is signed with it), so
            # the number would be kept, and sent again, for ever.
            log.warning("a callback phone was refused: brokers.county.edge_key is not configured, so the fleet's "
                        "acknowledgement could never delete it here")
            raise QueueError("本中心暂不能登记回访电话，请联系工作人员")
        phone = checked_phone(phone_text)
        number = (ticket_number or "").strip().upper()
        if not number:
            raise QueueError("请输入您的排队号码")
        now = queue.clock()
        with queue.store.transaction() as db:
            row = db.execute(
                "SELECT r.rating_id, r.window, r.score FROM ratings r JOIN tickets t ON t.id = r.ticket_id "
                "WHERE t.business_day = ? AND t.number = ?", (queue.today(now), number)).fetchone()
            if row is None or row[2] not in messages.BAD_SCORES:
                raise QueueError(f"今天 {number} 号没有不满意评价，无需登记回访电话")
            rating_id, window, _score = row
            payload = messages.make("callback_phone", event_id=uuid.uuid4().hex, rating_id=rating_id, ticket=number,
                                    window=window, phone=phone, ts=now)
            queue.store.enqueue(db, topics.build(topics.CALLBACK_PHONE, center=queue.config.code),
                                messages.encode("callback_phone", payload), 1, False, now)
        log.info("window %d: a callback phone was left for the 差评 of %s", window, number)  # never the number
        return number
