"""Rating pad (好差评评价器) of one window: five buttons, one rating per ticket."""
