"""Parameter charts: a metric's series over any window, downsampled for display, with limits
and the work-order operations and alarms of the window as annotations."""
