"""Parts of bench/async_campaign.py: step timings from every process, and the scaling replay."""
