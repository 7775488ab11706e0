from flask import Blueprint, abort, current_app, request
from sqlalchemy import select

from .models import Project, Task, db

bp = Blueprint("api", __name__, url_prefix="/api")


def _json_field(name, kind):
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        abort(400, f"{name} is required")
    return data[name]


@bp.get("/projects")
def list_projects():
    page = request.args.get("page", 1, type=int)
    query = select(Project).order_by(Project.id)
    found = db.paginate(query, page=page, per_page=current_app.config["PAGE_SIZE"])
    return {"projects": [p.to_dict() for p in found.items], "total": found.total}


@bp.post("/projects")
def create_project():
    project = Project(name=_json_field("name", str))
    db.session.add(project)
    db.session.commit()
    return project.to_dict(), 201


@bp.get("/projects/<int:project_id>")
def get_project(project_id):
    return db.get_or_404(Project, project_id).to_dict()


@bp.get("/projects/<int:project_id>/tasks")
def list_tasks(project_id):
    project = db.get_or_404(Project, project_id)
    tasks = project.tasks
    if "done" in request.args:
        tasks = [t for t in tasks if t.done == (request.args["done"] == "true")]
    return {"tasks": [t.to_dict() for t in tasks]}


@bp.post("/projects/<int:project_id>/tasks")
def create_task(project_id):
    project = db.get_or_404(Project, project_id)
    task = Task(project=project, title=_json_field("title", str))
    db.session.add(task)
    db.session.commit()
    return task.to_dict(), 201


@bp.patch("/tasks/<int:task_id>")
def update_task(task_id):
    task = db.get_or_404(Task, task_id)
    task.done = _json_field("done", bool)
    db.session.commit()
    return task.to_dict()
