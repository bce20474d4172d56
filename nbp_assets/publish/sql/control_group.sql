{#
  control_group: the week's held-out active customers, for nbp_work.control_group.
  customers: the week's customers; active: the active status; salt: NBP_CONTROL_GROUP_SALT;
  threshold: floor(share x 2^32); share, salt_digest: recorded with each row.
#}
{% from "publish/sql/_control.sql" import control_md5, control_bucket %}
SELECT party_id, CAST({{ share }} AS DOUBLE) AS share, {{ lit(salt_digest) }} AS salt_digest
FROM (
    SELECT party_id, {{ control_md5(salt, "party_id") }} AS control_digest
    FROM {{ customers }} c
    WHERE status = {{ lit(active) }}
) c
WHERE {{ control_bucket("control_digest") }} < {{ threshold }}
