//! The shared controllers, pure: given typed objects and what was observed of them, the
//! changes to make. The agent and the coordinator each run them through a small driver
//! that reads their store and writes the changes back.
