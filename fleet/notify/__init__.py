"""Notifications to county staff: webhooks (plain JSON, WeCom and DingTalk group robots).

    notifier = Notifier(settings.notify_webhooks)
    notifier.start()
    notifier.notify(Notification(title="设备离线", lines=["..."], center_code="445202101001"))

Delivery runs on its own thread, retried with exponential backoff; a failure is
logged and never reaches the caller (an alert sweep must not stop because a
robot URL is wrong).
"""

from fleet.notify.messages import Notification, render
from fleet.notify.sender import Notifier, deliver
from fleet.notify.targets import WebhookTarget

__all__ = ["Notification", "Notifier", "WebhookTarget", "deliver", "render"]
