"""Cherry webhooks: signature checks and the receiver that lands deliveries in the sync store's inbox."""
