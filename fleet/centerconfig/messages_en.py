"""English for the windows and staff page (fleet.web.i18n: the Chinese text is the message id)."""

from __future__ import annotations

ENGLISH = {
    "窗口与人员": "Windows and staff", "中心配置下发": "Center configuration delivery", "状态": "Status",
    "最新版本": "Latest version", "生效版本": "In force", "中心拒绝了该版本": "The center rejected this version",
    "已生效": "Applied", "待生效": "Pending", "被拒绝": "Rejected", "未下发": "Not delivered",
    "窗口": "Windows", "窗口号": "Window", "类型": "Kind", "办理业务": "Services", "工号": "Staff no.",
    "综合受理": "General intake", "专窗": "Dedicated", "机动": "Flexible", "删除": "Delete",
    "保存窗口": "Save window", "人员名单": "Staff roster", "姓名": "Name", "职务": "Title",
    "可登录窗口": "May sign in at", "AB角": "Stands in for", "照片": "Photo", "密码": "PIN", "任意窗口": "Any window",
    "有": "Yes", "已设置": "Set", "AB角（顶岗对象工号）": "Stands in for (staff no.)",
    "登录密码（4至8位数字，留空不变）": "Sign-in PIN (4 to 8 digits; empty: unchanged)",
    "保存人员": "Save staff member",
    "版本": "Version", "时间": "Time", "修改人": "Changed by", "说明": "Note",
    "回滚到此版本": "Roll back to this version",
}
