"""amili-customer-sync: Amili ARM customers to Kafka change events."""
