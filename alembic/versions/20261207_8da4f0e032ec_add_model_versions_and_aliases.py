"""add model versions and aliases

The model registry (LC01): every trained version of a model (its artifact folder, checksum and
held-out metrics) and the aliases that name one (`production`, `candidate`, any name). A trigger
announces every change of an alias on the channel `model_aliases` (NOTIFY is sent at commit), so
each app process switches without polling for it.

Data step: the artifact committed with this revision is registered as digits 1.0.0 and given the
`production` alias here, so a database that has run `alembic upgrade head` serves it at once and
the app writes nothing at start-up (several workers starting together would race to insert it).
The values are those of example_app/ml/artifacts/digits/manifest.json at this revision.

Revision ID: 8da4f0e032ec
Revises: 5b0f3c1d9e2a
Create Date: 2026-12-07 21:50:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from sqlalchemy.dialects import postgresql

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8da4f0e032ec"
down_revision: str | Sequence[str] | None = "5b0f3c1d9e2a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# --8<-- [start:seed]
# Plain SQL, so that `alembic upgrade --sql` (the offline script) writes it too.
SEED_VERSION = """
INSERT INTO model_versions (name, version, artifact_path, sha256, metrics) VALUES (
    'digits', '1.0.0', 'example_app/ml/artifacts/digits',
    '52728839d24625d03e818d8748b926ca206c207a4e80cbac89958f08ffbc6fb2',
    '{"accuracy": 0.977778, "macro_f1": 0.977761, "log_loss": 0.094157, "n_train": 1347, "n_test": 450}'
)"""
SEED_ALIAS = "INSERT INTO model_aliases (name, alias, version) VALUES ('digits', 'production', '1.0.0')"
# --8<-- [end:seed]

# --8<-- [start:notify]
NOTIFY_FUNCTION = """
CREATE FUNCTION notify_model_alias() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('model_aliases', coalesce(NEW.name, OLD.name));
    RETURN NULL;
END
$$
"""
NOTIFY_TRIGGER = """
CREATE TRIGGER model_aliases_notify AFTER INSERT OR UPDATE OR DELETE ON model_aliases
FOR EACH ROW EXECUTE FUNCTION notify_model_alias()
"""
# --8<-- [end:notify]


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("artifact_path", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sqlmodel.sql.sqltypes.UTCDateTime(), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_model_versions")),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("alias", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column(
            "updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name=op.f("fk_model_aliases_name_model_versions"),
        ),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_model_aliases")),
    )
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)
    op.execute(SEED_VERSION)
    op.execute(SEED_ALIAS)


def downgrade() -> None:
    op.execute("DROP TRIGGER model_aliases_notify ON model_aliases")
    op.execute("DROP FUNCTION notify_model_alias()")
    op.drop_table("model_aliases")
    op.drop_table("model_versions")
