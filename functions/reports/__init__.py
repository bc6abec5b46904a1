"""Reports and dashboards: the dashboards in four formats, and the weekly and monthly reports
mailed to each audience."""
