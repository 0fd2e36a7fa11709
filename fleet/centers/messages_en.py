"""English for the registry's pages (fleet.web.i18n: the Chinese text is the message id)."""

from __future__ import annotations

ENGLISH = {
    "中心名录": "Center registry", "建设覆盖": "Rollout coverage",
    "乡镇（街道）便民服务中心": "Town (street) service center", "村（社区）便民服务站": "Village (community) station",
    "中心名称": "Center name", "层级": "Level", "地址": "Address", "咨询电话": "Enquiries phone",
    "投诉电话": "Complaints phone", "联系人": "Contact person", "联系人电话": "Contact phone",
    "开放时间": "Opening hours", "休息日开放": "Open on rest days",
    "搜索": "Search", "按名称或代码搜索": "Search by name or code", "全部层级": "All levels",
    "所属乡镇": "Town", "今日在线": "Online today", "今日未在线": "Not online today", "尚未接入": "Not connected yet",
    "未登记": "Not described", "编辑": "Edit", "查看": "View", "新增或编辑中心": "Add or edit a center",
    "输入 12 位区划代码": "12-digit division code", "打开": "Open", "没有符合条件的中心。": "No center matches.",
    "中心资料": "Center profile", "已保存。": "Saved.", "保存": "Save",
    "请修改标出的内容后再保存。": "Correct the marked fields and save again.",
    "留空则使用全县默认开放时间": "Leave empty for the county default", "全县默认": "County default",
    "该中心尚未登记资料。": "This center has no profile yet.", "最后修改": "Last changed",
    "统一标识，如 某某镇便民服务中心 / 某某村便民服务站":
    "The unified name, e.g. \"Xx Town Service Center\" or \"Xx Village Service Station\"",
    "只读": "Read only", "覆盖率": "Coverage", "目标覆盖率": "Target coverage", "达标": "Meets target",
    "未达标": "Below target", "乡镇": "Town", "有中心的乡镇": "Towns with a center",
    "有服务站的村（社区）": "Villages with a station", "今日在线覆盖率": "Online today", "按乡镇": "By town",
    "乡镇中心": "Town center", "服务站": "Stations", "无": "None", "缺少中心": "No center",
    "缺少服务站": "Villages without a station", "未匹配区划的中心": "Centers matching no division",
    "导入区划代码": "Import division codes", "导入": "Import", "设置目标": "Set target",
    "统计局发布的统计用区划代码 CSV：每行 区划代码,名称 或 区划代码,城乡分类代码,名称（UTF-8 或 GBK）。"
    "导入将替换文件所含各县的区划。":
    "The statistics bureau's division codes as CSV: each line code,name or code,urban-rural class,name (UTF-8 or "
    "GBK). An import replaces the divisions of every county in the file.",
    "已导入 {n} 个区划。": "{n} divisions imported.", "尚未导入区划代码。": "No division list imported yet.",
    "导入失败：": "Import refused:",
    "覆盖 = (有中心的乡镇 + 有服务站的村) ÷ (乡镇 + 村)；今日在线 = 其边缘网关今日在线过。":
    "Coverage = (towns with a center + villages with a station) ÷ (towns + villages); online today = its edge "
    "agent was online today.",
    "修改中心资料": "Change center profile", "导入区划代码表": "Import division list",
    "共 {total} 个中心，仅显示前 {n} 个；请按名称或代码搜索。":
    "{total} centers, the first {n} shown; search by name or code.",
    "今日未在线的服务站": "Stations not online today",
    "修改目标覆盖率": "Change target coverage", "县（区）": "Counties", "县级区划数": "County divisions",
    "乡镇数": "Towns", "村（社区）数": "Villages (communities)",
}
