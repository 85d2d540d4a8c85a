"""What the API answers, as pydantic models: the OpenAPI schema documents every JSON route's shape.

Response models here *describe* what a route returns without filtering it: each allows extra keys
(``extra="allow"``), so a field a service adds later still reaches the pages, and the declared ones
are typed and described (中文 where the domain term is Chinese). Error bodies are in :mod:`.errors`.
"""
