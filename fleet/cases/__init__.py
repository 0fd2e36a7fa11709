"""差评 follow-up cases (回访工单): opened by bad ratings, assigned, called back, rectified or explained,
closed within a number of working days; appeal and review (申诉复核) can exclude a rating."""
