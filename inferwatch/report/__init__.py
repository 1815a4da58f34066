"""`inferwatch report`: a picture of an incident, drawn from a real Prometheus, so an on-call
engineer or a postmortem can see what happened without Grafana."""
