"""File readers for the knowledge base: PDF, HTML, DOCX, markdown and plain text, told
apart by their content."""
