"""One JSON view: a user's posts."""

from django.http import HttpRequest, JsonResponse

from .models import Post


def user_posts(request: HttpRequest, user_id: int) -> JsonResponse:
    posts = Post.objects.filter(author_id=user_id).order_by("id")
    return JsonResponse(
        {
            "posts": [
                {"id": p.id, "title": p.title, "created_at": p.created_at.isoformat()}
                for p in posts
            ]
        }
    )
