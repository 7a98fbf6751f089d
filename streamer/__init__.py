"""Ingress (SIP, SIPREC, RTP, WebRTC, replay) and the composition root (`app.py`)."""
