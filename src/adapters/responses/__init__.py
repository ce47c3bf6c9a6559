"""Where the Responses API keeps stored responses."""
