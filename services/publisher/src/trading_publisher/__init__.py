"""Trade-event publisher: a never-blocking client, the Streamlit UI and an HTTP endpoint."""
