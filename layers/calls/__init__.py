"""Grid calls, departments report (网格呼叫、部门报到, Zhucheng): a call climbs worker → grid chief →
community → town → city department, each level approving in its time; the department signs and
reports arrival on site, checked against the place. Nothing is re-exported here.
"""
