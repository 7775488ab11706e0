from blog.views import user_posts
from django.urls import path

urlpatterns = [path("users/<int:user_id>/posts", user_posts)]
