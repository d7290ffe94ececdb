"""Everything that talks to a store: pools, migrations, repositories (the SQL), blob stores."""
