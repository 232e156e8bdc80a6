"""CNN Lens Streamlit UI: widgets in, pictures out. All the work happens in models/ and interpret/."""
