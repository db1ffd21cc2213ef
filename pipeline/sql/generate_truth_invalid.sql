-- One row per planted invalid row (truth/invalid_rows.csv): where it is (file, 1-based data
-- row, as rejects/<dataset>.parquet reports it), which column is broken, the reject reason,
-- the broken value as written, and what was planted. In CSV output, a record with one field
-- too many closes transactions.csv ($malformed_row; 0 when there is none).
SELECT dataset, dataset || $extension AS source_file, source_row, "column", reason, value, note
FROM g_faults
UNION ALL
SELECT 'transactions', 'transactions.csv', $malformed_row, '', 'malformed_row', $malformed_line,
       'a record with one field too many'
WHERE $malformed_row > 0
ORDER BY dataset, source_row
